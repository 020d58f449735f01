import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { type Exec, growPool } from '@dotmesh/storage';
import type { Logger } from '../log.ts';

/** What the server can do with its pool device (see main.ts for the real one). */
export interface PoolControl {
  /** The pool's size (the pool file's, or the filesystem's for an existing mount) and whether grow() can work. */
  size(): Promise<{ sizeBytes: number | null; growable: boolean }>;
  /** Grows the pool online to `sizeBytes`; resolves with the new size. */
  grow(sizeBytes: number): Promise<number>;
}

/** Where the pool lives on the host: what main.ts knows from the server config. */
export interface PoolDevice {
  /** The loop file; null when the pool is an existing btrfs mount. */
  readonly poolFile: string | null;
  readonly mountPoint: string;
  /** true: grow with truncate (sparse file); false: with fallocate (preallocated). */
  readonly sparse: boolean;
  /**
   * The pool file's filesystem is the pool's alone (a pool volume): its root-reserved blocks
   * count as free space for a grow (ext4 keeps 5 % for root, which the server is).
   */
  readonly ownsFilesystem?: boolean;
}

export interface LoopPoolControlOptions {
  readonly device: PoolDevice;
  readonly exec: Exec;
  readonly logger: Logger;
  /** Records the new size where the next start reads it (the config file's poolSizeBytes). */
  readonly persistSize: (sizeBytes: number) => Promise<void>;
}

/**
 * Grows a loop-file pool while it is mounted and in use, through the storage package's
 * growPool (fallocate keeps a preallocated pool preallocated; truncate keeps a sparse one
 * sparse; then `losetup -c` and `btrfs filesystem resize max`), then persists the size. Contracts: never shrinks (INVALID_ARGUMENT);
 * refuses existing mounts (UNSUPPORTED); idempotent: growing to the current size re-runs the
 * loop and btrfs steps, which finishes a grow interrupted by a crash; grows are serialised.
 */
export class LoopPoolControl implements PoolControl {
  readonly #o: LoopPoolControlOptions;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(options: LoopPoolControlOptions) {
    this.#o = options;
  }

  async size(): Promise<{ sizeBytes: number | null; growable: boolean }> {
    const file = this.#o.device.poolFile;
    if (file === null) return { sizeBytes: null, growable: false };
    return { sizeBytes: (await stat(file)).size, growable: true };
  }

  grow(sizeBytes: number): Promise<number> {
    const run = this.#chain.then(
      () => this.#grow(sizeBytes),
      () => this.#grow(sizeBytes),
    );
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #grow(sizeBytes: number): Promise<number> {
    const { device, exec, logger } = this.#o;
    const file = device.poolFile;
    if (file === null) {
      throw new DotmeshError('UNSUPPORTED', `Cannot grow the pool at ${device.mountPoint}: it is an existing btrfs mount`, {
        hint: `grow the device under it yourself, then run 'btrfs filesystem resize max ${device.mountPoint}'`,
      });
    }
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      throw new DotmeshError('INVALID_ARGUMENT', `Invalid pool size ${sizeBytes}: give a positive number of bytes`);
    }
    const current = (await stat(file)).size;
    if (sizeBytes < current) {
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `Cannot shrink the pool ${file} from ${gib(current)} to ${gib(sizeBytes)}: pools only grow`,
        { hint: `give a size larger than ${gib(current)}` },
      );
    }
    if (sizeBytes > current && !device.sparse) await this.#requireHostSpace(file, sizeBytes - current, sizeBytes);
    await growPool({ poolFile: file, mountPoint: device.mountPoint, sizeBytes, sparse: device.sparse, exec });
    await this.#o.persistSize(sizeBytes);
    logger.info({ poolFile: file, from: current, to: sizeBytes }, 'pool grown');
    return sizeBytes;
  }

  async #requireHostSpace(file: string, needed: number, target: number): Promise<void> {
    const s = await statfs(dirname(file));
    // On a filesystem of its own the server (root) may use the root-reserved blocks too.
    const free = (this.#o.device.ownsFilesystem ? s.bfree : s.bavail) * s.bsize;
    if (free < needed) {
      throw new DotmeshError(
        'POOL_FULL',
        `Cannot grow the pool ${file} to ${gib(target)}: it needs ${gib(needed)} more, and the host filesystem under it has ${gib(free)} free`,
        { hint: 'free space on the host, or choose a smaller size' },
      );
    }
  }
}

/**
 * Rewrites `poolSizeBytes` in the server config file (atomically, mode 0600), keeping every
 * other field as written, so that a restart agrees with the grown pool.
 */
export async function writePoolSizeToConfig(configFile: string, sizeBytes: number): Promise<void> {
  const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  config.poolSizeBytes = sizeBytes;
  const tmp = join(dirname(configFile), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, configFile);
  } finally {
    await rm(tmp, { force: true });
  }
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}
