import { statfs } from 'node:fs/promises';
import { poolSizeOnVolume } from '@dotmesh/rpc/server-defaults';
import type { Logger } from '../log.ts';
import type { PoolControl } from './pool-grow.ts';

/**
 * A pool on a volume of its own (`serve-kubernetes --pool-volume-dir`: the operator's pool PVC)
 * follows the volume's size. The contract: the pool file is `poolSizeOnVolume(volume)` big, where
 * `volume` is the volume filesystem's size (statfs: blocks × block size). When the volume grows
 * (the operator raised the PVC's request, Kubernetes expanded the disk and, online, its
 * filesystem), the server sees it on its next look — every `intervalMs` — and grows the pool
 * online through the PoolControl (the storage package's growPool: fallocate, `losetup -c`,
 * `btrfs filesystem resize max`): no unmount, no dot paused. The pool never shrinks (a volume
 * that is smaller, or a pool made larger by an earlier formula, is left as it is).
 *
 * Killed at any point, the next start finishes the job: `start()` grows the pool to
 * max(its file's size, the target) once, which re-runs the loop-device and filesystem steps even
 * when the file already has its size (each step is a no-op once done).
 */
/** How often the server looks at its pool volume's size. */
export const VOLUME_GROWTH_CHECK_MS = 5000;

export interface VolumeGrowthOptions {
  /** The pool volume's directory (its filesystem is the pool's alone). */
  readonly volumeDir: string;
  readonly pool: PoolControl;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** The volume filesystem's size in bytes (default: statfs of volumeDir). */
  readonly volumeBytes?: (dir: string) => Promise<number>;
}

/** The size of the filesystem holding `dir` (statfs: blocks × block size). */
export async function filesystemBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.blocks * s.bsize;
}

export class VolumeGrowth {
  readonly #o: VolumeGrowthOptions;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> = Promise.resolve();

  constructor(options: VolumeGrowthOptions) {
    this.#o = options;
  }

  /** Finishes any grow a stop interrupted, grows to the volume, then looks every intervalMs. */
  async start(): Promise<void> {
    await this.check(true);
    this.#timer = setInterval(() => void this.check(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * One look (serialised with any other): grows the pool when the volume allows a larger one.
   * `finish`: grow to the pool's own size at least, re-running the loop and btrfs steps. Errors
   * are logged, never thrown (the next look tries again).
   */
  check(finish = false): Promise<void> {
    this.#checking = this.#checking
      .then(() => this.#check(finish))
      .catch((err: unknown) => this.#o.logger.error({ err, volumeDir: this.#o.volumeDir }, 'cannot grow the pool to its volume'));
    return this.#checking;
  }

  async #check(finish: boolean): Promise<void> {
    const { pool, volumeDir, logger } = this.#o;
    const { sizeBytes: current, growable } = await pool.size();
    if (!growable || current === null) return;
    const volume = await (this.#o.volumeBytes ?? filesystemBytes)(volumeDir);
    const target = poolSizeOnVolume(volume);
    if (target > current) {
      logger.info({ volumeDir, volumeBytes: volume, from: current, to: target }, 'the pool volume grew: growing the pool');
      await pool.grow(target);
    } else if (finish) {
      await pool.grow(current);
    }
  }
}
