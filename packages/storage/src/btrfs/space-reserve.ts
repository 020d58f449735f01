import { rename, rm, stat } from 'node:fs/promises';
import { isDotmeshError } from '@dotmesh/core';
import type { Exec, ExecLogger } from '../exec.ts';

/** Size of the reserve file: room for thousands of labels and state files. */
export const RESERVE_BYTES = 8 * 1024 * 1024;

/**
 * A preallocated file (`<root>/reserve`) that keeps a little data space back for the driver's
 * own bookkeeping on a full pool. On btrfs any file write, even of a few bytes, fails with
 * ENOSPC once data space is exhausted, and deletes need small writes first (the delete intent
 * in a label, the seq floor in state.json). When such a write fails with POOL_FULL, the reserve
 * is removed and the pool synced, which frees its extents at once, and the operation is
 * retried; the reserve is re-created (best effort) whenever space allows. Measured on a full
 * 400 MiB pool: removing an 8 MiB fallocated file lets the next writes succeed immediately.
 *
 * Concurrency: calls are serialised internally; `ensure` never throws.
 */
export class SpaceReserve {
  readonly #path: string;
  readonly #root: string;
  readonly #exec: Exec;
  readonly #logger: ExecLogger;
  readonly #bytes: number;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(o: { root: string; exec: Exec; logger: ExecLogger; bytes?: number }) {
    this.#root = o.root;
    this.#path = `${o.root}/reserve`;
    this.#exec = o.exec;
    this.#logger = o.logger;
    this.#bytes = o.bytes ?? RESERVE_BYTES;
  }

  get path(): string {
    return this.#path;
  }

  /**
   * Creates the reserve if it is missing and the pool has room. Never throws. When missing, the
   * transaction is committed first: that wakes btrfs's cleaner, which frees deleted subvolumes
   * only after a commit (else up to 30 s later), so space freed by deletes comes back sooner.
   */
  ensure(): Promise<boolean> {
    return this.#serial(async () => {
      const s = await stat(this.#path).catch(() => undefined);
      if (s && s.size === this.#bytes) return true;
      const tmp = `${this.#path}.tmp`;
      try {
        await rm(tmp, { force: true });
        await this.#exec.run('btrfs', ['filesystem', 'sync', this.#root]);
        await this.#exec.run('fallocate', ['-l', String(this.#bytes), tmp]);
        await rename(tmp, this.#path);
        return true;
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        this.#logger.debug({ err: (err as Error).message }, 'space reserve not (re)created: pool too full');
        return false;
      }
    });
  }

  /**
   * Runs `fn`; if it fails with POOL_FULL, gives the reserve back to the pool and runs it once
   * more. `fn` must be safe to re-run after a failure (the driver's deletes and label writes are).
   */
  async withReserve<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (!isDotmeshError(e) || e.code !== 'POOL_FULL' || !(await this.#release())) throw e;
      this.#logger.warn({ root: this.#root }, 'pool full: used the space reserve to finish an operation');
      return fn();
    }
  }

  /** Removes the reserve and commits the transaction; false when there was none. */
  #release(): Promise<boolean> {
    return this.#serial(async () => {
      const s = await stat(this.#path).catch(() => undefined);
      if (!s) return false;
      await rm(this.#path, { force: true });
      await this.#exec.run('btrfs', ['filesystem', 'sync', this.#root]);
      return true;
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn, fn);
    this.#chain = run.catch(() => undefined);
    return run;
  }
}
