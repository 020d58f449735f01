/**
 * A keyed readers-writer lock, writer-preferring and FIFO among writers.
 * Used as "the dot lock": branch-level operations hold it shared, dot-wide operations
 * (delete; later stash and incoming transfers) hold it exclusive.
 */
interface LockState {
  readers: number;
  writer: boolean;
  waiting: Array<{ exclusive: boolean; grant: () => void }>;
}

export class KeyedRwLock {
  readonly #locks = new Map<string, LockState>();

  async shared<T>(key: string, fn: () => Promise<T>): Promise<T> {
    await this.#acquire(key, false);
    try {
      return await fn();
    } finally {
      this.#release(key, false);
    }
  }

  async exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
    await this.#acquire(key, true);
    try {
      return await fn();
    } finally {
      this.#release(key, true);
    }
  }

  #state(key: string): LockState {
    let s = this.#locks.get(key);
    if (!s) {
      s = { readers: 0, writer: false, waiting: [] };
      this.#locks.set(key, s);
    }
    return s;
  }

  #acquire(key: string, exclusive: boolean): Promise<void> {
    const s = this.#state(key);
    const free = exclusive ? !s.writer && s.readers === 0 : !s.writer && !s.waiting.some((w) => w.exclusive);
    if (free && s.waiting.length === 0) {
      if (exclusive) s.writer = true;
      else s.readers++;
      return Promise.resolve();
    }
    return new Promise((resolve) => s.waiting.push({ exclusive, grant: resolve }));
  }

  #release(key: string, exclusive: boolean): void {
    const s = this.#state(key);
    if (exclusive) s.writer = false;
    else s.readers--;
    // Grant in FIFO order: one writer, or a run of readers.
    while (s.waiting.length > 0 && !s.writer) {
      const next = s.waiting[0]!;
      if (next.exclusive) {
        if (s.readers > 0) break;
        s.waiting.shift();
        s.writer = true;
        next.grant();
        break;
      }
      s.waiting.shift();
      s.readers++;
      next.grant();
    }
    if (!s.writer && s.readers === 0 && s.waiting.length === 0) this.#locks.delete(key);
  }
}
