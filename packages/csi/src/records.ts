import { CSI_META, volumeRecordCommitId } from '@dotmesh/core';
import type { DotmeshClient, FoundCommit } from '@dotmesh/rpc';
import type { Snapshot, Volume } from './csi-types.ts';
import { type SnapshotRef, snapshotId, type VolumeRef, volumeId } from './ids.ts';

/**
 * What the driver keeps in the dots themselves, as commit metadata (no state of its own, so
 * any replica of the controller answers the same and a killed driver loses nothing):
 *
 * - a **volume record**: a commit on the volume's branch when it is created, `csi-kind=volume`,
 *   `csi-name=<hash of the CSI name>`, `csi-capacity`, `csi-source` (the content source's id),
 *   `csi-subdot`; its id `csiv-<hash>`;
 * - a **snapshot**: a retained commit (`retain=true`: it outlives the volume) of the volume's
 *   branch, `csi-kind=snapshot`, `csi-snapshot=<hash of the CSI name>`, `csi-volume` (the
 *   source volume's id); its id `csis-<hash>`;
 * - a **group snapshot**: a retained commit of the one branch its volumes are subdots of,
 *   `csi-kind=group-snapshot`, `csi-group=<hash of the CSI name>`, `csi-members` (a JSON array of
 *   the member volumes' subdots, "" for a branch's own volume); its id `csig-<hash>`. Each member
 *   is a snapshot of that commit (group-records.ts).
 *
 * A deleted volume's branch is retired while a snapshot needs it (`__deleted-<id>` names it):
 * its records are not volumes any more.
 */
export const META = CSI_META;

export const RETIRED_PREFIX = '__deleted-';

export { volumeRecordCommitId };
export const snapshotCommitId = (hash: string) => `csis-${hash}`;
export const clonePointCommitId = (hash: string) => `csic-${hash}`;
/** The dot of a volume made from nothing, and every volume's branch, are named from its hash. */
export const volumeDotName = (hash: string) => `csi-${hash}`;
export const volumeBranchName = (hash: string) => `csi-${hash}`;

export interface VolumeRecord {
  readonly ref: VolumeRef;
  readonly id: string;
  readonly dotName: string;
  readonly branch: string;
  readonly capacity: number;
  readonly source: string;
  readonly commitId: string;
}

export interface SnapshotRecord {
  readonly ref: SnapshotRef;
  readonly id: string;
  readonly sourceVolumeId: string;
  /** Unix nanoseconds, as the commit's timestamp. */
  readonly timestampNs: string;
  /** The group snapshot it is a member of (deleted only with it), else undefined. */
  readonly groupId?: string;
}

export function volumeRecordOf(c: FoundCommit): VolumeRecord | undefined {
  if (c.Metadata[META.kind] !== 'volume' || c.Branch.startsWith(RETIRED_PREFIX)) return undefined;
  const ref: VolumeRef = {
    namespace: c.Namespace,
    dotId: c.DotId,
    branchId: c.FilesystemId,
    subdot: c.Metadata[META.subdot] ?? '',
  };
  return {
    ref,
    id: volumeId(ref),
    dotName: c.Name,
    branch: c.Branch,
    capacity: Number(c.Metadata[META.capacity] ?? '0') || 0,
    source: c.Metadata[META.source] ?? '',
    commitId: c.Id,
  };
}

export function snapshotRecordOf(c: FoundCommit): SnapshotRecord | undefined {
  if (c.Metadata[META.kind] !== 'snapshot') return undefined;
  const ref: SnapshotRef = {
    namespace: c.Namespace,
    dotId: c.DotId,
    branchId: c.FilesystemId,
    commitId: c.Id,
    subdot: c.Metadata[META.subdot] ?? '',
  };
  return { ref, id: snapshotId(ref), sourceVolumeId: c.Metadata[META.volume] ?? '', timestampNs: c.Metadata.timestamp ?? '0' };
}

/** The live volume record of a CSI name (by its hash), if any. */
export async function findVolume(client: DotmeshClient, hash: string): Promise<VolumeRecord | undefined> {
  for (const c of await client.call('FindCommits', { Key: META.name, Value: hash })) {
    const r = volumeRecordOf(c);
    if (r) return r;
  }
  return undefined;
}

export async function findSnapshot(client: DotmeshClient, hash: string): Promise<SnapshotRecord | undefined> {
  for (const c of await client.call('FindCommits', { Key: META.snapshot, Value: hash })) {
    const r = snapshotRecordOf(c);
    if (r) return r;
  }
  return undefined;
}

export async function allVolumes(client: DotmeshClient): Promise<VolumeRecord[]> {
  return (await client.call('FindCommits', { Key: META.kind, Value: 'volume' })).flatMap((c) => volumeRecordOf(c) ?? []);
}

export async function allSnapshots(client: DotmeshClient): Promise<SnapshotRecord[]> {
  return (await client.call('FindCommits', { Key: META.kind, Value: 'snapshot' })).flatMap((c) => snapshotRecordOf(c) ?? []);
}

export function volumeMessage(r: VolumeRecord): Volume {
  const source = r.source.startsWith('s1/')
    ? { content_source: { snapshot: { snapshot_id: r.source } } }
    : r.source.startsWith('v1/')
      ? { content_source: { volume: { volume_id: r.source } } }
      : {};
  return {
    capacity_bytes: r.capacity,
    volume_id: r.id,
    volume_context: { dotmeshNamespace: r.ref.namespace, dotmeshDot: r.dotName, dotmeshBranch: r.branch },
    ...source,
  };
}

export function snapshotMessage(r: SnapshotRecord): Snapshot {
  return {
    size_bytes: 0,
    snapshot_id: r.id,
    source_volume_id: r.sourceVolumeId,
    creation_time: timestampMessage(r.timestampNs),
    ready_to_use: true,
    group_snapshot_id: r.groupId ?? '',
  };
}

/** A commit's timestamp (unix nanoseconds as text; 0 when it is not a number) as a protobuf Timestamp. */
export function timestampMessage(timestampNs: string): { seconds: number; nanos: number } {
  const ns = BigInt(/^\d+$/.test(timestampNs) ? timestampNs : '0');
  return { seconds: Number(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) };
}
