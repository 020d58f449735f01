import { DotmeshError } from '@dotmesh/core';

/**
 * Defaults of the server config and the size parser, without zod, so `dm` can show them in
 * its help without loading the schema library. See server-config.ts for the contract.
 */
export const DEFAULT_POOL_DIR = '/var/lib/dotmesh';
export const DEFAULT_POOL_SIZE = '10G';
export const DEFAULT_RPC_PORT = 32607;
export const DEFAULT_CHECK_PORT = 32608;
/** The API over HTTPS, written by `dm cluster init` (a config file without `tlsPort` serves no HTTPS). */
export const DEFAULT_TLS_PORT = 32606;
export const DEFAULT_LISTEN_HOST = '0.0.0.0';
/** The node-to-node endpoint of a cluster of several nodes (where the original ran NATS). */
export const DEFAULT_CLUSTER_PORT = 32609;
/** Client and peer ports of a managed etcd member (the original Dotmesh's). */
export const DEFAULT_ETCD_CLIENT_PORT = 42379;
export const DEFAULT_ETCD_PEER_PORT = 42380;
/**
 * How long a managed etcd member whose node's address changed (its pool moved to another host)
 * waits for the other members to take its new peer URL before the server's start fails — and,
 * when no member answered in that time (every member moved at once), reports it stranded for an
 * etcd recovery (the server config's `etcdMoveWaitSeconds`; the operator ConfigMap's
 * `pvcPerNode.etcdMoveWaitSeconds`). The accepted range: at least 5 s, at most an hour.
 */
export const DEFAULT_ETCD_MOVE_WAIT_SECONDS = 120;
export const MIN_ETCD_MOVE_WAIT_SECONDS = 5;
export const MAX_ETCD_MOVE_WAIT_SECONDS = 3600;
export const CONFIG_FILE_NAME = 'config.json';
/** Where dockerd finds the `dm` volume driver (legacy plugins: `/run/docker/plugins/<driver>.sock`). */
export const DEFAULT_DOCKER_PLUGIN_SOCKET = '/run/docker/plugins/dm.sock';
/** The Docker Engine API the container tracker talks to. */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * A pool on a volume of its own (the operator's `storageMode: pvcPerNode`): the part of the
 * volume's filesystem left beside the pool file is this plus 5 % of the volume: for the server's
 * state (its etcd member's data: its write-ahead log alone preallocates 2 × 64 MiB) and for the
 * filesystem's own needs (a btrfs volume's statfs counts its metadata, about 120 MiB on 1 GiB).
 */
export const POOL_VOLUME_RESERVE_BYTES = 256 * 2 ** 20;

/**
 * The pool file's size on a volume whose filesystem holds `volumeBytes` (statfs: blocks ×
 * block size): the volume less POOL_VOLUME_RESERVE_BYTES and 5 %, in whole MiB, never below 0.
 * The server creates the pool at this size and grows it to this size when the volume grows
 * (pool/volume-growth.ts). A bigger volume never gives a smaller pool.
 */
export function poolSizeOnVolume(volumeBytes: number): number {
  const mib = 2 ** 20;
  const size = Math.floor((volumeBytes * 0.95 - POOL_VOLUME_RESERVE_BYTES) / mib) * mib;
  return Math.max(0, size);
}

/** Binary units as `truncate -s` reads them: K, M, G, T, P (optionally followed by "i"/"iB"/"B"). */
const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** Parses "10G", "512M", "1T", "1.5G" or a byte count; throws INVALID_ARGUMENT otherwise. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') {
    if (Number.isSafeInteger(input) && input > 0) return input;
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)(?:i?[bB])?\s*$/.exec(input);
    const unit = SIZE_UNITS[(m?.[2] ?? '').toUpperCase()];
    if (m && unit !== undefined) {
      const bytes = Math.floor(Number(m[1]) * unit);
      if (Number.isSafeInteger(bytes) && bytes > 0) return bytes;
    }
  }
  throw new DotmeshError('INVALID_ARGUMENT', `invalid size ${JSON.stringify(String(input))}`, {
    hint: 'use a byte count or a number with a unit, e.g. 10G, 512M, 1T',
  });
}

/** The kubelet's default FlexVolume plugin directory (the original's `flexvolumeDriverDir`). */
export const DEFAULT_FLEXVOLUME_DIR = '/usr/libexec/kubernetes/kubelet-plugins/volume/exec';
