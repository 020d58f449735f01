import type { Clock, Timer } from './clock.ts';
import type { StoreLogger } from './logger.ts';

/** Retry delay after a failed expiry run (e.g. the disk was full). */
const RETRY_MS = 1000;

/**
 * Keeps one timer armed for the earliest lease expiry and runs `expire` when it is due.
 * The engine calls `reschedule` after every lease change. `expire` must remove every due
 * lease, or the reaper spins on it.
 */
export class LeaseReaper {
  readonly #clock: Clock;
  readonly #nextExpiry: () => number | undefined;
  readonly #expire: () => void;
  readonly #logger: StoreLogger;
  #timer: Timer | undefined;
  #armedFor: number | undefined;
  #stopped = false;

  constructor(options: { clock: Clock; nextExpiry: () => number | undefined; expire: () => void; logger: StoreLogger }) {
    this.#clock = options.clock;
    this.#nextExpiry = options.nextExpiry;
    this.#expire = options.expire;
    this.#logger = options.logger;
  }

  reschedule(): void {
    if (this.#stopped) return;
    const due = this.#nextExpiry();
    if (due === this.#armedFor && this.#timer !== undefined) return;
    this.#arm(due, due === undefined ? 0 : due - this.#clock.now());
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #arm(due: number | undefined, delayMs: number): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#armedFor = due;
    if (due === undefined) return;
    this.#timer = this.#clock.setTimer(() => this.#fire(), delayMs);
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = undefined;
    if (this.#stopped) return;
    try {
      this.#expire();
    } catch (error) {
      this.#logger.warn('expiring leases failed; retrying', { error });
      this.#arm(this.#clock.now() + RETRY_MS, RETRY_MS);
      return;
    }
    this.reschedule();
  }
}
