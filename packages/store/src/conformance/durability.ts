import assert from 'node:assert/strict';
import { describe, type TestContext, test } from 'node:test';
import { brief, EventLog } from './event-log.ts';
import { type Harness, type OpenStore, withStore } from './fixture.ts';

/** Skips (with the reason) when the fixture has no `reopen`: a store without persistence. */
function canReopen(t: TestContext, h: Harness): boolean {
  if (h.fixture.reopen !== undefined) return true;
  t.skip('the fixture has no reopen: this store keeps nothing across a restart');
  return false;
}

export function durabilityTests(open: OpenStore): void {
  describe('durability', () => {
    test('keys, bookkeeping and the revision survive close and reopen', (t) =>
      withStore(open, async (h) => {
        if (!canReopen(t, h)) return;
        await h.store.put('a', '1');
        await h.store.put('a', '2');
        await h.store.put('b', 'x');
        await h.store.delete('b');
        const before = await h.store.range('');
        const store = await h.reopen();
        assert.deepEqual(await store.range(''), before);
        const next = await store.put('c', '3');
        assert.equal(next.revision, before.revision + 1);
      }));

    test('a watch from a revision before the reopen replays the history', (t) =>
      withStore(open, async (h) => {
        if (!canReopen(t, h)) return;
        const start = await h.store.revision();
        const r1 = await h.store.put('h/a', '1');
        const r2 = await h.store.delete('h/a');
        const store = await h.reopen();
        const log = await EventLog.start(store, 'h/', { fromRevision: start });
        assert.deepEqual(brief(await log.waitFor(2)), [
          ['put', 'h/a', '1', r1.revision],
          ['delete', 'h/a', undefined, r2.revision],
        ]);
        await log.cancel();
      }));

    test('leases survive reopen: keep-alive and revoke still work', (t) =>
      withStore(open, async (h) => {
        if (!canReopen(t, h)) return;
        const lease = await h.store.grantLease(60);
        await h.store.put('l', 'v', { lease });
        const store = await h.reopen();
        assert.equal((await store.get('l'))?.lease, lease);
        await store.keepAlive(lease);
        await store.revokeLease(lease);
        assert.equal(await store.get('l'), undefined);
      }));
  });
}
