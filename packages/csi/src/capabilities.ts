import type { AccessModeName, VolumeCapability } from './csi-types.ts';
import { invalid } from './grpc-errors.ts';

/**
 * Access modes the driver serves: one node at a time (a branch has one master node). The
 * multi-node modes are refused until branches can be shared between nodes.
 */
const SINGLE_NODE: ReadonlySet<AccessModeName> = new Set([
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
]);

/** Why the driver cannot serve `cap`, or undefined when it can (mount volumes, single-node modes). */
export function unsupported(cap: VolumeCapability): string | undefined {
  if (cap.access_type === 'block' || cap.block)
    return 'block volumes are not supported: dots are filesystems (use volumeMode: Filesystem)';
  if (!cap.mount) return 'a volume capability needs an access type (mount)';
  if (cap.mount.fs_type !== '' && cap.mount.fs_type !== 'btrfs') {
    return `fs_type ${JSON.stringify(cap.mount.fs_type.slice(0, 32))} is not supported: dots are btrfs subvolumes (leave it empty)`;
  }
  if (cap.mount.mount_flags.length > 0) return 'mount flags are not supported (a dot is a bind mount of a subvolume)';
  const mode = cap.access_mode?.mode ?? 'UNKNOWN';
  if (!SINGLE_NODE.has(mode)) return `access mode ${mode} is not supported: a dot is used on one node at a time`;
  return undefined;
}

/**
 * INVALID_ARGUMENT unless `caps` is non-empty and every one is served: `why` says why one is not
 * (this driver's rules by default; a test driver passes its own).
 */
export function requireSupported(
  caps: readonly VolumeCapability[] | undefined,
  call: string,
  why: (cap: VolumeCapability) => string | undefined = unsupported,
): void {
  if (!caps || caps.length === 0) throw invalid(`${call}: volume capabilities are required`);
  for (const cap of caps) {
    const reason = why(cap);
    if (reason) throw invalid(`${call}: ${reason}`);
  }
}

/** INVALID_ARGUMENT unless `cap` is given and served. */
export function requireCapability(cap: VolumeCapability | null | undefined, call: string): VolumeCapability {
  if (!cap) throw invalid(`${call}: a volume capability is required`);
  requireSupported([cap], call);
  return cap;
}

export function isReadOnlyMode(cap: VolumeCapability): boolean {
  return cap.access_mode?.mode === 'SINGLE_NODE_READER_ONLY';
}
