/**
 * Time as the store sees it: wall-clock milliseconds and one-shot timers. Injected so tests
 * can move time by hand (ManualClock) instead of sleeping.
 */
export interface Clock {
  now(): number;
  /** Calls `callback` once, about `delayMs` from now, unless cancelled first. */
  setTimer(callback: () => void, delayMs: number): Timer;
}

export interface Timer {
  cancel(): void;
}

/** setTimeout's largest delay; longer timers are re-armed when they fire. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** Real time. Its timers are unref'd: a store alone never keeps the process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(callback, delayMs) {
    const handle = setTimeout(callback, Math.min(Math.max(0, delayMs), MAX_DELAY_MS));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
};

/**
 * A clock for tests: time stands still until `advance`, which fires every timer that falls
 * due (in due order, synchronously, including timers set while firing).
 */
export class ManualClock implements Clock {
  #now: number;
  #timers: { due: number; seq: number; callback: () => void; cancelled: boolean }[] = [];
  #seq = 0;

  constructor(startMs = Date.UTC(2024, 0, 1)) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimer(callback: () => void, delayMs: number): Timer {
    const timer = { due: this.#now + Math.max(0, delayMs), seq: this.#seq++, callback, cancelled: false };
    this.#timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      const next = this.#timers.filter((t) => t.due <= target).sort((a, b) => a.due - b.due || a.seq - b.seq)[0];
      if (next === undefined) break;
      this.#now = Math.max(this.#now, next.due);
      next.cancelled = true;
      next.callback();
    }
    this.#now = target;
  }
}
