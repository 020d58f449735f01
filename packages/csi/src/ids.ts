import { createHash } from 'node:crypto';

/**
 * The driver's ids (defined in @dotmesh/core's csi-ids.ts, which the operator's volume
 * populator shares: the PersistentVolumes it makes carry ids of this driver) and name hashes.
 */
export {
  type GroupSnapshotRef,
  groupSnapshotId,
  parseGroupSnapshotId,
  parseSnapshotId,
  parseVolumeId,
  type SnapshotRef,
  snapshotId,
  type VolumeRef,
  volumeId,
} from '@dotmesh/core';

/**
 * The stable short form of a CSI name (any UTF-8, up to 128 bytes): 32 hex digits of its
 * SHA-256. Dot, branch and commit names the driver makes are derived from it, so a retried
 * call finds what the first one made.
 */
export function nameHash(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 32);
}
