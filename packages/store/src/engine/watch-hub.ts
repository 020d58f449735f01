import type { WatchEvent, Watcher } from '../store.ts';
import type { StoreLogger } from './logger.ts';

interface Entry {
  readonly prefix: string;
  /** Highest revision already queued (or skipped) for this watcher. */
  after: number;
  queue: WatchEvent[];
  scheduled: boolean;
  active: boolean;
  readonly onEvents: (events: readonly WatchEvent[]) => void;
  readonly onError: ((error: Error) => void) | undefined;
}

/**
 * The live watchers of one store. The engine calls `add` and `publish` synchronously around
 * its writes, so a watcher's replayed history and its live events meet without a gap or an
 * overlap. Delivery is asynchronous (a microtask), one batch per flush holding everything
 * queued, which never splits a revision. A throwing callback is logged and the watch goes on.
 */
export class WatchHub {
  readonly #entries = new Set<Entry>();
  readonly #logger: StoreLogger;

  constructor(logger: StoreLogger) {
    this.#logger = logger;
  }

  /**
   * Registers a watcher that first gets `replay` (history after its start revision up to
   * `after`), then every published event with revision > `after` under `prefix`.
   */
  add(options: {
    prefix: string;
    after: number;
    replay: WatchEvent[];
    onEvents: (events: readonly WatchEvent[]) => void;
    onError?: ((error: Error) => void) | undefined;
  }): Watcher {
    const entry: Entry = {
      prefix: options.prefix,
      after: options.after,
      queue: options.replay,
      scheduled: false,
      active: true,
      onEvents: options.onEvents,
      onError: options.onError,
    };
    this.#entries.add(entry);
    if (entry.queue.length > 0) this.#schedule(entry);
    return {
      cancel: async () => {
        entry.active = false;
        entry.queue = [];
        this.#entries.delete(entry);
      },
    };
  }

  /** Hands the events of one committed revision to every matching watcher. */
  publish(events: readonly WatchEvent[]): void {
    for (const entry of this.#entries) {
      let added = false;
      for (const event of events) {
        if (event.revision > entry.after && event.key.startsWith(entry.prefix)) {
          entry.queue.push(event);
          added = true;
        }
      }
      const last = events[events.length - 1];
      if (last !== undefined) entry.after = Math.max(entry.after, last.revision);
      if (added) this.#schedule(entry);
    }
  }

  /** Ends every watch: queued events are dropped, `onError` (if any) gets `error`. */
  closeAll(error: Error): void {
    for (const entry of this.#entries) {
      entry.active = false;
      entry.queue = [];
      const onError = entry.onError;
      if (onError !== undefined) queueMicrotask(() => this.#call(() => onError(error)));
    }
    this.#entries.clear();
  }

  #schedule(entry: Entry): void {
    if (entry.scheduled) return;
    entry.scheduled = true;
    queueMicrotask(() => {
      entry.scheduled = false;
      if (!entry.active || entry.queue.length === 0) return;
      const batch = entry.queue;
      entry.queue = [];
      this.#call(() => entry.onEvents(batch));
    });
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.#logger.warn('a watch callback threw; the watch goes on', { error });
    }
  }
}
