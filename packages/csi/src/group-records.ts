import type { CommitItem, DotmeshClient } from '@dotmesh/rpc';
import type { VolumeGroupSnapshot } from './csi-types.ts';
import { type GroupSnapshotRef, groupSnapshotId, snapshotId, volumeId } from './ids.ts';
import { allSnapshots, META, type SnapshotRecord, snapshotMessage, timestampMessage } from './records.ts';

/**
 * A group snapshot as the driver keeps it: one retained commit of the branch its volumes are
 * subdots of (records.ts), `csi-kind=group-snapshot`, `csi-group=<hash of the CSI name>`,
 * `csi-members=<JSON array of the members' subdots>`. Each member is the snapshot
 * `s1/…/<commit id>/<subdot>` of that commit, so a volume restored from it is a branch of that
 * commit holding its subdot, as for any snapshot.
 */
export const GROUP_KIND = 'group-snapshot';
export const groupCommitId = (hash: string) => `csig-${hash}`;

export interface GroupRecord {
  readonly ref: GroupSnapshotRef;
  readonly id: string;
  /** The members' subdots in the order the group was asked for ("" for a branch's own volume). */
  readonly subdots: readonly string[];
  readonly timestampNs: string;
}

const SUBDOT = /^(?:[A-Za-z0-9_-]{1,64})?$/;

/** `csi-members` of a group commit: a JSON array of distinct subdot names ("" allowed); else undefined. */
export function parseMembers(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length === 0) return undefined;
  if (!parsed.every((s): s is string => typeof s === 'string' && SUBDOT.test(s))) return undefined;
  return new Set(parsed).size === parsed.length ? parsed : undefined;
}

/** The group record of a commit, or undefined when it is not a group snapshot of this driver. */
export function groupRecordOf(c: {
  readonly Id: string;
  readonly FilesystemId: string;
  readonly DotId: string;
  readonly Namespace: string;
  readonly Metadata: Readonly<Record<string, string>>;
}): GroupRecord | undefined {
  if (c.Metadata[META.kind] !== GROUP_KIND) return undefined;
  const subdots = parseMembers(c.Metadata[META.members]);
  if (!subdots) return undefined;
  const ref: GroupSnapshotRef = { namespace: c.Namespace, dotId: c.DotId, branchId: c.FilesystemId, commitId: c.Id };
  return { ref, id: groupSnapshotId(ref), subdots, timestampNs: c.Metadata.timestamp ?? '0' };
}

/** The member snapshots of a group, in its order. */
export function memberRecords(g: GroupRecord): SnapshotRecord[] {
  const { namespace, dotId, branchId, commitId } = g.ref;
  return g.subdots.map((subdot) => {
    const ref = { namespace, dotId, branchId, commitId, subdot };
    return {
      ref,
      id: snapshotId(ref),
      sourceVolumeId: volumeId(ref),
      timestampNs: g.timestampNs,
      groupId: g.id,
    };
  });
}

export function groupMessage(g: GroupRecord): VolumeGroupSnapshot {
  return {
    group_snapshot_id: g.id,
    snapshots: memberRecords(g).map(snapshotMessage),
    creation_time: timestampMessage(g.timestampNs),
    ready_to_use: true,
  };
}

/** The group snapshot of a CSI name (by its hash), if any. */
export async function findGroup(client: DotmeshClient, hash: string): Promise<GroupRecord | undefined> {
  for (const c of await client.call('FindCommits', { Key: META.group, Value: hash })) {
    const g = groupRecordOf(c);
    if (g) return g;
  }
  return undefined;
}

/** The group snapshot of an id's commit among a branch's commits (CommitsById), if it is one. */
export function groupAmong(commits: readonly CommitItem[], ref: GroupSnapshotRef): GroupRecord | undefined {
  const c = commits.find((x) => x.Id === ref.commitId);
  return c ? groupRecordOf({ ...c, FilesystemId: ref.branchId, DotId: ref.dotId, Namespace: ref.namespace }) : undefined;
}

/** Every snapshot the user sees: single ones and the members of group snapshots. */
export async function everySnapshot(client: DotmeshClient): Promise<SnapshotRecord[]> {
  const groups = (await client.call('FindCommits', { Key: META.kind, Value: GROUP_KIND })).flatMap((c) => groupRecordOf(c) ?? []);
  return [...(await allSnapshots(client)), ...groups.flatMap(memberRecords)];
}
