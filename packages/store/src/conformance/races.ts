import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Store } from '../store.ts';
import { type OpenStore, withStore } from './fixture.ts';

/** Increments `key` once by read-modify-write with a modRevision compare, retrying on conflict. */
async function increment(store: Store, key: string): Promise<{ revision: number; conflicts: number }> {
  for (let conflicts = 0; ; conflicts++) {
    const kv = await store.get(key);
    assert.ok(kv, `${key} exists`);
    const result = await store.txn({
      compare: [{ key, target: 'modRevision', op: '==', value: kv.modRevision }],
      success: [{ type: 'put', key, value: String(Number(kv.value) + 1) }],
    });
    if (result.succeeded) return { revision: result.revision, conflicts };
  }
}

export function raceTests(open: OpenStore): void {
  describe('concurrent compare-and-swap', () => {
    test('20 workers × 10 increments of one counter end at exactly 200, each at its own revision', () =>
      withStore(open, async ({ store }) => {
        await store.put('counter', '0');
        const start = await store.revision();
        const worker = async () => {
          const results = [];
          for (let i = 0; i < 10; i++) results.push(await increment(store, 'counter'));
          return results;
        };
        const results = (await Promise.all(Array.from({ length: 20 }, worker))).flat();
        const kv = await store.get('counter');
        assert.equal(kv?.value, '200');
        assert.equal(kv?.version, 201);
        const revisions = new Set(results.map((r) => r.revision));
        assert.equal(revisions.size, 200, 'every successful txn has its own revision');
        assert.equal(await store.revision(), start + 200, 'failed txns do not bump the revision');
        assert.ok(
          results.some((r) => r.conflicts > 0),
          'the workers really raced (some compare failed)',
        );
      }));

    test('create-if-absent: exactly one of 10 concurrent creators wins; the others read its value', () =>
      withStore(open, async ({ store }) => {
        const attempts = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store.txn({
              compare: [{ key: 'owner', target: 'createRevision', op: '==', value: 0 }],
              success: [{ type: 'put', key: 'owner', value: `worker-${i}` }],
              failure: [{ type: 'get', key: 'owner' }],
            }),
          ),
        );
        const winners = attempts.flatMap((a, i) => (a.succeeded ? [i] : []));
        assert.equal(winners.length, 1);
        const owner = await store.get('owner');
        assert.equal(owner?.value, `worker-${winners[0]}`);
        assert.equal(owner?.version, 1);
        for (const a of attempts.filter((x) => !x.succeeded)) assert.equal(a.gets[0]?.value, owner?.value);
      }));

    test('50 concurrent puts get 50 consecutive, distinct revisions', () =>
      withStore(open, async ({ store }) => {
        const start = await store.revision();
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(`p/${i}`, String(i))));
        const revisions = results.map((r) => r.revision).sort((a, b) => a - b);
        assert.deepEqual(
          revisions,
          Array.from({ length: 50 }, (_, i) => start + 1 + i),
        );
      }));
  });
}
