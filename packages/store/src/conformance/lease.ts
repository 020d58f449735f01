import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { brief, EventLog } from './event-log.ts';
import { eventually, type OpenStore, withStore } from './fixture.ts';

/** Real stores may round a TTL up (etcd's minimum is about 2 s) and reap lazily: allow for it. */
const EXPIRY_TIMEOUT_MS = 8000;

export function leaseTests(open: OpenStore): void {
  describe('leases', () => {
    test('keys of an expired lease disappear with a delete event each; other keys stay', () =>
      withStore(open, async (h) => {
        const { store } = h;
        const lease = await store.grantLease(1);
        await store.put('l/a', '1', { lease });
        await store.put('l/b', '2', { lease });
        await store.put('l/plain', '3');
        assert.equal((await store.get('l/a'))?.lease, lease);
        assert.equal((await store.get('l/plain'))?.lease, undefined);
        const log = await EventLog.start(store, 'l/');
        await h.elapse(1100);
        await eventually('the leased keys are gone', async () => (await store.get('l/a')) === undefined, EXPIRY_TIMEOUT_MS);
        assert.equal(await store.get('l/b'), undefined);
        assert.equal((await store.get('l/plain'))?.value, '3');
        const events = await log.waitFor(2);
        assert.deepEqual(
          events.map((e) => [e.type, e.key]),
          [
            ['delete', 'l/a'],
            ['delete', 'l/b'],
          ],
        );
        assert.equal(events[0]?.revision, events[1]?.revision, 'one revision for the expiry');
        // Recognised by code, with the lease named in the data (never by the message's words).
        await assert.rejects(store.keepAlive(lease), { code: 'LEASE_NOT_FOUND', data: { leaseId: lease } });
        await assert.rejects(store.put('l/c', 'x', { lease }), { code: 'LEASE_NOT_FOUND', data: { leaseId: lease } });
        await store.revokeLease(lease); // an expired lease revokes quietly
        await log.cancel();
      }));

    test('keepAlive restarts the TTL', () =>
      withStore(open, async (h) => {
        const { store } = h;
        const lease = await store.grantLease(1);
        await store.put('ka', 'v', { lease });
        await h.elapse(600);
        await store.keepAlive(lease);
        await h.elapse(600);
        // 1.2 s after the grant but 0.6 s after the keep-alive: still there.
        assert.equal((await store.get('ka'))?.value, 'v');
        await store.keepAlive(lease);
        await h.elapse(1100);
        await eventually(
          'the key expires without keep-alives',
          async () => (await store.get('ka')) === undefined,
          EXPIRY_TIMEOUT_MS,
        );
      }));

    test('revoke deletes the keys at once (one revision, delete events) and is idempotent', () =>
      withStore(open, async ({ store }) => {
        const lease = await store.grantLease(60);
        await store.put('rv/a', '1', { lease });
        await store.put('rv/b', '2', { lease });
        const log = await EventLog.start(store, 'rv/');
        const before = await store.revision();
        await store.revokeLease(lease);
        assert.deepEqual((await store.range('rv/')).kvs, []);
        assert.equal(await store.revision(), before + 1);
        assert.deepEqual(brief(await log.waitFor(2)), [
          ['delete', 'rv/a', undefined, before + 1],
          ['delete', 'rv/b', undefined, before + 1],
        ]);
        await store.revokeLease(lease);
        await store.revokeLease('0123456789abcdef');
        await assert.rejects(store.keepAlive(lease), { code: 'LEASE_NOT_FOUND' });
        await log.cancel();
      }));

    test('a put without the lease detaches the key; revoking a lease without keys keeps the revision', () =>
      withStore(open, async ({ store }) => {
        const lease = await store.grantLease(60);
        await store.put('d', 'leased', { lease });
        await store.put('d', 'free');
        assert.equal((await store.get('d'))?.lease, undefined);
        const before = await store.revision();
        await store.revokeLease(lease);
        assert.equal((await store.get('d'))?.value, 'free');
        assert.equal(await store.revision(), before);
      }));

    test('bad TTLs and unknown leases are rejected', () =>
      withStore(open, async ({ store }) => {
        for (const ttl of [0, -1, 1.5, Number.NaN]) await assert.rejects(store.grantLease(ttl), { code: 'INVALID_ARGUMENT' });
        await assert.rejects(store.keepAlive('0123456789abcdef'), { code: 'LEASE_NOT_FOUND' });
        await assert.rejects(store.put('k', 'v', { lease: '0123456789abcdef' }), { code: 'LEASE_NOT_FOUND' });
        assert.equal(await store.get('k'), undefined);
      }));
  });
}
