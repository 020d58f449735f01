import { invalid, requireSupported as requireCapabilities, type VolumeCapability } from '@dotmesh/csi';

/** The topology key of a node's and a disk's zone. */
export const ZONE_KEY = 'topology.cloud.test.dotmesh.io/zone';

/** Filesystems a mount volume may be formatted with ('' is ext4). */
const FILESYSTEMS = new Set(['', 'ext4', 'btrfs']);

/** A cloud block disk attaches to one node at a time. */
const SINGLE_NODE = new Set([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
]);

/** Why `cap` cannot be served, or undefined when it can. */
export function unsupported(cap: VolumeCapability): string | undefined {
  if (!cap.block && !cap.mount) return 'a volume capability needs an access type (block or mount)';
  if (cap.mount && !FILESYSTEMS.has(cap.mount.fs_type)) {
    return `fs_type ${JSON.stringify(cap.mount.fs_type.slice(0, 32))} is not supported (ext4 or btrfs)`;
  }
  const mode = cap.access_mode?.mode ?? 'UNKNOWN';
  if (!SINGLE_NODE.has(mode)) return `access mode ${mode} is not supported: a disk attaches to one node at a time`;
  return undefined;
}

/** INVALID_ARGUMENT unless `caps` is non-empty and every one is served by this driver. */
export function requireSupported(caps: readonly VolumeCapability[] | undefined, call: string): void {
  requireCapabilities(caps, call, unsupported);
}

/** `field` of a request, INVALID_ARGUMENT naming it when empty. */
export function required(value: string | undefined, field: string, call: string): string {
  if (!value) throw invalid(`${call}: ${field} is required`);
  return value;
}

/** Node ids are `<node name>@<zone>`: the controller reads a node's zone from its id. */
export function nodeId(node: string, zone: string): string {
  return `${node}@${zone}`;
}

/** The zone of node id `id`, or undefined when it is not one this driver gives. */
export function zoneOfNode(id: string): string | undefined {
  const at = id.lastIndexOf('@');
  return at > 0 && at < id.length - 1 ? id.slice(at + 1) : undefined;
}
