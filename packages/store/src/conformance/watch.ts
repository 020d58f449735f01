import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { brief, EventLog } from './event-log.ts';
import { type OpenStore, withStore } from './fixture.ts';

export function watchTests(open: OpenStore): void {
  describe('watch', () => {
    test('a watch from now delivers puts and deletes with their revisions, in order', () =>
      withStore(open, async ({ store }) => {
        await store.put('w/old', 'before the watch');
        const log = await EventLog.start(store, 'w/');
        const r1 = await store.put('w/a', '1');
        const r2 = await store.put('w/b', '2');
        const r3 = await store.delete('w/a');
        assert.deepEqual(brief(await log.waitFor(3)), [
          ['put', 'w/a', '1', r1.revision],
          ['put', 'w/b', '2', r2.revision],
          ['delete', 'w/a', undefined, r3.revision],
        ]);
        assert.equal((await log.settle()).length, 3);
        await log.cancel();
      }));

    test('a watch from an older revision replays exactly the missed events, then goes on live', () =>
      withStore(open, async ({ store }) => {
        const seen = await store.put('h/x', '1');
        const r1 = await store.put('h/x', '2');
        const r2 = await store.put('other', 'ignored');
        const r3 = await store.delete('h/x');
        const r4 = await store.put('h/y', '3');
        const log = await EventLog.start(store, 'h/', { fromRevision: seen.revision });
        const r5 = await store.put('h/z', 'live');
        assert.deepEqual(brief(await log.waitFor(4)), [
          ['put', 'h/x', '2', r1.revision],
          ['delete', 'h/x', undefined, r3.revision],
          ['put', 'h/y', '3', r4.revision],
          ['put', 'h/z', 'live', r5.revision],
        ]);
        assert.ok(r2.revision < r3.revision);
        assert.equal((await log.settle()).length, 4, 'no duplicates');
        await log.cancel();
      }));

    test('writes racing with the replay are delivered once each, without gaps', () =>
      withStore(open, async ({ store }) => {
        const start = await store.revision();
        let written = 0;
        const writer = (async () => {
          for (let i = 0; i < 60; i++) {
            await store.put(`r/${i}`, String(i));
            written++;
          }
        })();
        // Start the watch halfway, so the writer's next puts interleave with its setup.
        // Yield to the event loop (not just microtasks), so a store doing real I/O progresses.
        while (written < 30) await new Promise((resolve) => setImmediate(resolve));
        const log = await EventLog.start(store, 'r/', { fromRevision: start });
        await writer;
        const events = await log.waitFor(60);
        assert.deepEqual(
          events.map((e) => e.revision),
          Array.from({ length: 60 }, (_, i) => start + 1 + i),
        );
        assert.equal((await log.settle()).length, 60);
        await log.cancel();
      }));

    test('a watch from the current revision gets only later writes', () =>
      withStore(open, async ({ store }) => {
        const now = await store.put('c/a', 'old');
        const log = await EventLog.start(store, 'c/', { fromRevision: now.revision });
        const next = await store.put('c/b', 'new');
        assert.deepEqual(brief(await log.waitFor(1)), [['put', 'c/b', 'new', next.revision]]);
        assert.equal((await log.settle()).length, 1);
        await log.cancel();
      }));

    test('a prefix watch ignores other keys', () =>
      withStore(open, async ({ store }) => {
        const log = await EventLog.start(store, 'mine/');
        await store.put('theirs/a', 'x');
        await store.put('mine', 'not under mine/');
        await store.put('min/e', 'x');
        const r = await store.put('mine/a', 'y');
        assert.deepEqual(brief(await log.waitFor(1)), [['put', 'mine/a', 'y', r.revision]]);
        assert.equal((await log.settle()).length, 1);
        await log.cancel();
      }));

    test('a txn and a deletePrefix deliver all their events at one revision, in one batch', () =>
      withStore(open, async ({ store }) => {
        const log = await EventLog.start(store, 't/');
        const txn = await store.txn({
          compare: [],
          success: [
            { type: 'put', key: 't/1', value: 'a' },
            { type: 'put', key: 't/2', value: 'b' },
            { type: 'delete', key: 't/none' },
          ],
        });
        const del = await store.deletePrefix('t/');
        assert.deepEqual(brief(await log.waitFor(4)), [
          ['put', 't/1', 'a', txn.revision],
          ['put', 't/2', 'b', txn.revision],
          ['delete', 't/1', undefined, del.revision],
          ['delete', 't/2', undefined, del.revision],
        ]);
        assert.equal(del.revision, txn.revision + 1);
        // waitFor's checkOrder has verified that neither revision was split across batches.
        await log.cancel();
      }));

    test('cancel stops delivery; two watchers see the same events', () =>
      withStore(open, async ({ store }) => {
        const cancelled = await EventLog.start(store, 'k/');
        const kept = await EventLog.start(store, 'k/');
        await store.put('k/1', 'a');
        await cancelled.waitFor(1);
        await cancelled.cancel();
        await cancelled.cancel();
        await store.put('k/2', 'b');
        await kept.waitFor(2);
        assert.equal((await cancelled.settle()).length, 1);
        assert.deepEqual(
          kept.events.map((e) => e.key),
          ['k/1', 'k/2'],
        );
        await kept.cancel();
      }));
  });
}
