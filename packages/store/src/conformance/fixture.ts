import type { Store } from '../store.ts';

/** What an implementation hands the conformance suite for one test. */
export interface StoreFixture {
  /** A fresh, empty store. */
  readonly store: Store;
  /**
   * Opens the same data again. The suite closes `store` first. Omit for stores without
   * persistence (the durability tests are then skipped with that reason).
   */
  readonly reopen?: () => Promise<Store>;
  /**
   * Moves the store's clock forward by `ms` (a ManualClock). Without it the suite waits in
   * real time for leases to expire.
   */
  readonly advanceTime?: (ms: number) => Promise<void>;
  /** Removes what `open` made. Runs after the suite closed every store it was handed. */
  readonly cleanup: () => Promise<void>;
}

export type OpenStore = () => Promise<StoreFixture>;

/** A fixture plus the bookkeeping to close every store the test touched. */
export interface Harness {
  store: Store;
  readonly fixture: StoreFixture;
  /** Closes the current store and reopens it (only when the fixture supports it). */
  reopen(): Promise<Store>;
  /** Lets `ms` of store time pass: advanceTime when available, else a real sleep. */
  elapse(ms: number): Promise<void>;
}

/** Runs `body` with a fresh fixture; always closes the stores and cleans up. */
export async function withStore(open: OpenStore, body: (h: Harness) => Promise<void>): Promise<void> {
  const fixture = await open();
  const stores: Store[] = [fixture.store];
  const harness: Harness = {
    store: fixture.store,
    fixture,
    async reopen() {
      if (fixture.reopen === undefined) throw new Error('this fixture cannot reopen');
      await harness.store.close();
      harness.store = await fixture.reopen();
      stores.push(harness.store);
      return harness.store;
    },
    async elapse(ms) {
      if (fixture.advanceTime !== undefined) await fixture.advanceTime(ms);
      else await sleep(ms);
    },
  };
  try {
    await body(harness);
  } finally {
    for (const store of stores) await store.close();
    await fixture.cleanup();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(10);
  }
}
