import { DotmeshError } from '@dotmesh/core';

/**
 * Preflight of `dm cluster init`: facts are gathered by the caller (system.ts), the decision is
 * this pure function, so every refusal and its text is unit-tested. Returns the first problem.
 */
export interface PreflightFacts {
  readonly uid: number;
  /** A live process holds the pid file: the server is already running. */
  readonly runningPid: number | null;
  readonly btrfsInKernel: boolean;
  /** Path of mkfs.btrfs, or null when not installed. */
  readonly mkfsBtrfs: string | null;
  /** Free bytes where the pool file goes; null when not checked (reused file, sparse, mount). */
  readonly freeBytes: number | null;
  /** Ports already taken (of the API, check, HTTPS and node-to-node ports). */
  readonly portsInUse: readonly number[];
  /** For --use-existing-mount: whether that path is a mounted btrfs filesystem. */
  readonly existingMountIsBtrfs: boolean | null;
}

export interface PreflightPlan {
  readonly poolSizeBytes: number;
  readonly existingMount: string | null;
  readonly poolFile: string;
  readonly port: number;
  /** HTTPS port; 0 or absent: none. */
  readonly tlsPort?: number;
  readonly checkPort: number;
  /** The node-to-node endpoint's port; 0 or absent: none. */
  readonly clusterPort?: number;
}

/** Room kept free beside a preallocated pool file. */
export const FREE_SPACE_MARGIN = 256 * 1024 * 1024;

export function preflight(facts: PreflightFacts, plan: PreflightPlan): DotmeshError | null {
  if (facts.uid !== 0) {
    return new DotmeshError('PERMISSION_DENIED', 'dm cluster init must run as root: it creates and mounts a btrfs pool', {
      hint: 'run it again with sudo',
    });
  }
  if (facts.runningPid !== null) {
    return new DotmeshError('CONFLICT', 'Dotmesh is already running!', {
      hint: `dotmesh-server has pid ${facts.runningPid}; use \`dm cluster reset\` first to start again`,
    });
  }
  if (!facts.btrfsInKernel) {
    return new DotmeshError('UNSUPPORTED', 'btrfs is not available in this kernel (not listed in /proc/filesystems)', {
      hint: 'load it with `modprobe btrfs`, or use a kernel with btrfs support',
    });
  }
  if (plan.existingMount !== null) {
    if (facts.existingMountIsBtrfs === false) {
      return new DotmeshError('INVALID_ARGUMENT', `${plan.existingMount} is not a mounted btrfs filesystem`, {
        hint: 'mount a btrfs filesystem there first, or leave out --use-existing-mount to use a pool file',
      });
    }
  } else {
    if (facts.mkfsBtrfs === null) {
      return new DotmeshError('UNSUPPORTED', 'mkfs.btrfs was not found', {
        hint: 'install btrfs-progs (apt-get install btrfs-progs)',
      });
    }
    if (facts.freeBytes !== null && facts.freeBytes < plan.poolSizeBytes + FREE_SPACE_MARGIN) {
      const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
      return new DotmeshError(
        'POOL_FULL',
        `not enough free space for a ${gib(plan.poolSizeBytes)} pool at ${plan.poolFile}: ${gib(facts.freeBytes)} free`,
        {
          hint: 'use a smaller --pool-size, --sparse, or another --use-pool-dir',
        },
      );
    }
  }
  for (const port of [plan.port, plan.checkPort, plan.tlsPort ?? 0, plan.clusterPort ?? 0]) {
    if (port !== 0 && facts.portsInUse.includes(port)) {
      const flag =
        port === plan.port
          ? '--port'
          : port === plan.checkPort
            ? '--check-port'
            : port === plan.tlsPort
              ? '--tls-port (0: no HTTPS)'
              : '--cluster-port';
      return new DotmeshError('CONFLICT', `port ${port} is already in use`, { hint: `choose another with ${flag}` });
    }
  }
  return null;
}
