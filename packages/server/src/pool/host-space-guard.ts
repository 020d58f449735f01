import { statfs } from 'node:fs/promises';
import { DotmeshError } from '@dotmesh/core';
import type { Exec } from '@dotmesh/storage';
import type { Logger } from '../log.ts';

/**
 * For a sparse pool file, the host filesystem underneath can fill before the pool does, and a
 * loop device on a full host turns writes into I/O errors that can damage the pool. This
 * guard watches the host's free space and, before it runs out, remounts the pool read-only
 * (so nothing, containers included, can write) and makes mutating RPCs fail with POOL_FULL.
 * When space comes back (above reserve × 1.25, to avoid flapping) it remounts read-write.
 * Deletes still work: they briefly remount read-write, since they free space (the pool is
 * mounted with discard, so freed blocks become holes in the sparse file).
 */
export interface HostSpaceGuardOptions {
  /** A directory on the host filesystem holding the pool file. */
  readonly hostDir: string;
  readonly mountPoint: string;
  readonly reserveBytes: number;
  readonly intervalMs: number;
  readonly exec: Exec;
  readonly logger: Logger;
}

export interface WriteGuard {
  /** Throws POOL_FULL while writes are refused. */
  assertWritable(what: string): void;
  /** Runs `fn` with the pool writable even while guarded (for deletes). */
  whileWritable<T>(fn: () => Promise<T>): Promise<T>;
}

export const ALWAYS_WRITABLE: WriteGuard = {
  assertWritable: () => {},
  whileWritable: (fn) => fn(),
};

export class HostSpaceGuard implements WriteGuard {
  readonly #o: HostSpaceGuardOptions;
  #readOnly = false;
  #freeBytes = Number.POSITIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> = Promise.resolve();
  #writers = 0;

  constructor(options: HostSpaceGuardOptions) {
    this.#o = options;
  }

  get readOnly(): boolean {
    return this.#readOnly;
  }

  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(() => void this.check(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  /** One check (serialised with any other check). */
  check(): Promise<void> {
    this.#checking = this.#checking
      .then(() => this.#check())
      .catch((err: unknown) => this.#o.logger.error({ err }, 'host space check failed'));
    return this.#checking;
  }

  async #check(): Promise<void> {
    const s = await statfs(this.#o.hostDir);
    this.#freeBytes = s.bavail * s.bsize;
    if (this.#writers > 0) return;
    if (!this.#readOnly && this.#freeBytes < this.#o.reserveBytes) {
      await this.#remount('ro');
      this.#readOnly = true;
      this.#o.logger.warn(
        { freeBytes: this.#freeBytes, reserveBytes: this.#o.reserveBytes },
        'host almost full: pool remounted read-only',
      );
    } else if (this.#readOnly && this.#freeBytes > this.#o.reserveBytes * 1.25) {
      await this.#remount('rw');
      this.#readOnly = false;
      this.#o.logger.info({ freeBytes: this.#freeBytes }, 'host space back: pool writable again');
    }
  }

  assertWritable(what: string): void {
    if (!this.#readOnly) return;
    throw new DotmeshError(
      'POOL_FULL',
      `Cannot ${what}: the host filesystem under the pool has only ${mib(this.#freeBytes)} MiB free (reserve ${mib(this.#o.reserveBytes)} MiB), so the pool is read-only`,
      { hint: `free space on the filesystem holding ${this.#o.hostDir}, or delete dots; writes resume by themselves` },
    );
  }

  async whileWritable<T>(fn: () => Promise<T>): Promise<T> {
    await this.#checking;
    this.#writers++;
    try {
      if (this.#readOnly && this.#writers === 1) await this.#remount('rw');
      return await fn();
    } finally {
      this.#writers--;
      if (this.#readOnly && this.#writers === 0) await this.#remount('ro').catch(() => undefined);
      void this.check();
    }
  }

  async #remount(mode: 'ro' | 'rw'): Promise<void> {
    await this.#o.exec.run('mount', ['-o', `remount,${mode}`, this.#o.mountPoint]);
  }
}

function mib(n: number): string {
  return (n / 2 ** 20).toFixed(0);
}
