import assert from 'node:assert/strict';
import type { Store, WatchEvent, Watcher, WatchOptions } from '../store.ts';
import { sleep } from './fixture.ts';

/** Records what a watch delivers, checking on the way that no batch splits a revision. */
export class EventLog {
  readonly events: WatchEvent[] = [];
  readonly batches: (readonly WatchEvent[])[] = [];
  #watcher: Watcher | undefined;
  #waiters: { count: number; resolve: () => void }[] = [];

  static async start(store: Store, prefix: string, options: WatchOptions = {}): Promise<EventLog> {
    const log = new EventLog();
    log.#watcher = await store.watch(prefix, options, (events) => log.#receive(events));
    return log;
  }

  /** Waits until at least `count` events arrived; returns the first `count`. */
  async waitFor(count: number, timeoutMs = 5000): Promise<WatchEvent[]> {
    if (this.events.length < count) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push({ count, resolve })),
        new Promise<void>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`waited ${timeoutMs} ms for ${count} events, got ${JSON.stringify(this.events)}`)),
            timeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    }
    this.checkOrder();
    return this.events.slice(0, count);
  }

  /** Waits a little and returns everything: for asserting that nothing more arrives. */
  async settle(ms = 100): Promise<WatchEvent[]> {
    await sleep(ms);
    this.checkOrder();
    return [...this.events];
  }

  async cancel(): Promise<void> {
    await this.#watcher?.cancel();
  }

  /** Revisions never go down, and no revision is split across (or repeated in) batches. */
  checkOrder(): void {
    let previous = 0;
    for (const batch of this.batches) {
      assert.ok(batch.length > 0, 'an empty batch was delivered');
      assert.ok(batch[0]!.revision > previous, `batch starting at revision ${batch[0]!.revision} follows ${previous}`);
      for (let i = 1; i < batch.length; i++) assert.ok(batch[i]!.revision >= batch[i - 1]!.revision, 'revisions went down');
      previous = batch[batch.length - 1]!.revision;
    }
  }

  #receive(events: readonly WatchEvent[]): void {
    this.batches.push(events);
    this.events.push(...events);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.events.length < w.count) return true;
      w.resolve();
      return false;
    });
  }
}

/** Events reduced to comparable tuples. */
export function brief(events: readonly WatchEvent[]): [string, string, string | undefined, number][] {
  return events.map((e) => [e.type, e.key, e.value, e.revision]);
}
