import { describe } from 'node:test';
import { durabilityTests } from './conformance/durability.ts';
import type { OpenStore } from './conformance/fixture.ts';
import { kvTests } from './conformance/kv.ts';
import { leaseTests } from './conformance/lease.ts';
import { raceTests } from './conformance/races.ts';
import { txnTests } from './conformance/txn.ts';
import { watchTests } from './conformance/watch.ts';

export type { OpenStore, StoreFixture } from './conformance/fixture.ts';

/**
 * The one test suite every Store implementation runs (node:test). `open` makes a fresh, empty
 * store per test; see StoreFixture for the optional `reopen` (durability tests) and
 * `advanceTime` (lease tests without real waiting). Only behaviour the contract in store.ts
 * promises is tested, so an etcd-backed store must pass it unchanged.
 */
export function runStoreConformance(name: string, open: OpenStore): void {
  describe(`Store conformance: ${name}`, () => {
    kvTests(open);
    txnTests(open);
    raceTests(open);
    watchTests(open);
    leaseTests(open);
    durabilityTests(open);
  });
}
