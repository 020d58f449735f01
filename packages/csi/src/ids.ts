/**
 * The driver's ids (defined in @dotmesh/core's csi-ids.ts, which the operator's volume
 * populator shares: the PersistentVolumes it makes carry ids of this driver) and name hashes
 * (@dotmesh/rpc's csi-name-hash.ts, shared the same way).
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

export { csiNameHash as nameHash } from '@dotmesh/rpc/csi-name-hash';
