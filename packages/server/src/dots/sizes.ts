import type { StorageDriver, VolumeSizes } from '@dotmesh/storage';

/**
 * Fresh sizes and dirty state for every read that shows them, without a storm of driver
 * calls: a request joins a driver call that started after it arrived (so it never sees a
 * state older than itself: dirty never reads clean after a write), and concurrent requests
 * share one such call.
 */
export class SizeTracker {
  readonly #driver: StorageDriver;
  #running: Promise<Map<string, VolumeSizes>> | null = null;
  #queued: Promise<Map<string, VolumeSizes>> | null = null;

  constructor(driver: StorageDriver) {
    this.#driver = driver;
  }

  fresh(): Promise<Map<string, VolumeSizes>> {
    if (this.#running === null) return this.#start();
    if (this.#queued === null) {
      this.#queued = this.#running.then(
        () => this.#start(),
        () => this.#start(),
      );
    }
    return this.#queued;
  }

  #start(): Promise<Map<string, VolumeSizes>> {
    this.#queued = null;
    const run = this.#driver.sizes().finally(() => {
      if (this.#running === run) this.#running = null;
    });
    this.#running = run;
    return run;
  }
}
