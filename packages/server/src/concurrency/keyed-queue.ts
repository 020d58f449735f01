/**
 * Runs async functions one at a time per key, in arrival order; different keys run in
 * parallel. Used as "one queue per branch": every mutation of a branch goes through it.
 * A failing function does not stop the queue.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** Number of keys with queued or running work (for DumpInternalState and tests). */
  get activeKeys(): number {
    return this.#tails.size;
  }
}
