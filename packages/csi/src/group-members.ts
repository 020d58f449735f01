import { invalid, notFound } from './grpc-errors.ts';
import { parseVolumeId, type VolumeRef } from './ids.ts';

/**
 * Which volumes one group snapshot can take. A group snapshot is one commit of one branch, so
 * its volumes must all be subdots of that branch (volumes of a `dotmeshDot` StorageClass are
 * subdots of that dot's master branch; a plain volume is the one volume of its own branch).
 * Volumes of different dots, or of different branches of one dot, are refused until commits
 * across branches exist.
 */

/** The most volumes one group snapshot takes (their subdots are kept in one metadata value). */
export const MAX_GROUP_VOLUMES = 256;

/** VolumeGroupSnapshotClass parameters: only the `csi.storage.k8s.io/` ones the sidecar passes. */
const SIDECAR_PREFIX = 'csi.storage.k8s.io/';

export function checkGroupParameters(raw: Readonly<Record<string, string>> | undefined): void {
  for (const key of Object.keys(raw ?? {})) {
    if (!key.startsWith(SIDECAR_PREFIX)) {
      throw invalid(
        `CreateVolumeGroupSnapshot: unknown VolumeGroupSnapshotClass parameter ${JSON.stringify(key.slice(0, 64))} (the driver takes none besides the ${SIDECAR_PREFIX} secrets)`,
      );
    }
  }
}

/**
 * The volume refs of `ids`, in order: INVALID_ARGUMENT when there are none, too many or a
 * repeated one; NOT_FOUND for an id that is not a volume id of this driver.
 */
export function parseGroupVolumeIds(ids: readonly string[] | undefined): Array<{ id: string; ref: VolumeRef }> {
  if (!ids || ids.length === 0) throw invalid('CreateVolumeGroupSnapshot: source_volume_ids is required');
  if (ids.length > MAX_GROUP_VOLUMES) {
    throw invalid(`CreateVolumeGroupSnapshot: ${ids.length} volumes; a group snapshot takes at most ${MAX_GROUP_VOLUMES}`);
  }
  const seen = new Set<string>();
  return ids.map((id) => {
    if (seen.has(id)) throw invalid(`CreateVolumeGroupSnapshot: volume ${id.slice(0, 300)} is named twice`);
    seen.add(id);
    const ref = parseVolumeId(id);
    if (!ref) throw notFound(`CreateVolumeGroupSnapshot: no volume ${id.slice(0, 300)}`);
    return { id, ref };
  });
}

/** A volume of a group, with the name of its dot and branch (for the error message). */
export interface GroupVolume {
  readonly id: string;
  readonly ref: VolumeRef;
  /** `<namespace>/<dot name>`, and the branch ("" for master). */
  readonly dot: string;
  readonly branch: string;
}

/** The one branch all `volumes` are subdots of: INVALID_ARGUMENT naming the volumes and dots otherwise. */
export function oneBranch(volumes: readonly GroupVolume[]): {
  readonly namespace: string;
  readonly dotId: string;
  readonly branchId: string;
  readonly subdots: string[];
} {
  const [first] = volumes;
  if (!first) throw invalid('CreateVolumeGroupSnapshot: source_volume_ids is required');
  const where = (v: GroupVolume) => `${v.id} (dot ${v.dot}${v.branch ? `, branch ${v.branch}` : ''})`;
  if (volumes.some((v) => v.ref.dotId !== first.ref.dotId)) {
    throw invalid(
      `CreateVolumeGroupSnapshot: the volumes are in different dots: ${volumes.map(where).join(', ')}. A group snapshot is one commit of one dot: make the volumes with one StorageClass whose dotmeshDot parameter names their dot, or take a VolumeSnapshot of each volume`,
    );
  }
  if (volumes.some((v) => v.ref.branchId !== first.ref.branchId)) {
    throw invalid(
      `CreateVolumeGroupSnapshot: the volumes are on different branches of dot ${first.dot}: ${volumes.map(where).join(', ')}. A group snapshot is one commit of one branch: group only volumes of one dotmeshDot StorageClass, or take a VolumeSnapshot of each volume`,
    );
  }
  return {
    namespace: first.ref.namespace,
    dotId: first.ref.dotId,
    branchId: first.ref.branchId,
    subdots: volumes.map((v) => v.ref.subdot),
  };
}

/**
 * INVALID_ARGUMENT when a Get or Delete names member snapshot ids (`asked`, optional: [] means
 * "not said") that are not the group's (`members`).
 */
export function checkMemberIds(call: string, groupId: string, members: readonly string[], asked: readonly string[] | undefined) {
  if (!asked || asked.length === 0) return;
  const want = new Set(members);
  if (asked.length !== want.size || new Set(asked).size !== asked.length || !asked.every((id) => want.has(id))) {
    throw invalid(
      `${call}: snapshot_ids ${asked.map((s) => s.slice(0, 300)).join(', ')} are not the snapshots of group ${groupId} (${members.join(', ')})`,
    );
  }
}
