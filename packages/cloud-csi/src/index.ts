/**
 * @dotmesh/cloud-csi: a test-only CSI driver standing in for a cloud's block disks (EBS, PD):
 * zones, dynamic provisioning, attach to one node, online expansion. Never shipped.
 */

export { ZONE_KEY } from './capabilities.ts';
export { pickZone, sizeFor } from './controller.ts';
export { type DiskRecord, Disks, diskId } from './disks.ts';
export { type CloudDriverOptions, type RunningCloudDriver, startCloudDriver } from './driver.ts';
export { DRIVER_NAME } from './identity.ts';
