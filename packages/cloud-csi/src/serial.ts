/** Runs async steps one after another, in the order they were queued (a failed one does not stop the next). */
export class Serial {
  #queue: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
