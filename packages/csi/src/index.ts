/**
 * @dotmesh/csi: the Kubernetes CSI driver csi.dotmesh.io, a client of the dotmesh-server API
 * (like `dm`): volumes are branches of dots, snapshots retained commits. See docs/kubernetes.md.
 */

// The gRPC plumbing of a CSI driver, for the repository's test-only drivers (packages/cloud-csi).
export { requireSupported } from './capabilities.ts';
export { type CsiClient, csiClient } from './client.ts';
export { CONTROLLER_CAPABILITIES } from './controller.ts';
export { type Credentials, parseCredentials, SECRET_API_KEY, SECRET_USER_KEY } from './credentials.ts';
export type { AccessModeName, VolumeCapability } from './csi-types.ts';
export { type DriverOptions, type RunningDriver, startDriver } from './driver.ts';
export { GROUP_CONTROLLER_CAPABILITIES } from './group-controller.ts';
export { CsiError, invalid, notFound } from './grpc-errors.ts';
export { DRIVER_NAME } from './identity.ts';
export {
  groupSnapshotId,
  nameHash,
  parseGroupSnapshotId,
  parseSnapshotId,
  parseVolumeId,
  snapshotId,
  volumeId,
} from './ids.ts';
export { NODE_CAPABILITIES } from './node.ts';
export { loadCsiServices, loadRegistrationService } from './proto.ts';
export { registrationService } from './registration.ts';
export { type Log, unary } from './unary.ts';
