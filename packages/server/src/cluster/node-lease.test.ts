import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { MemoryStore, type Store } from '@dotmesh/store';
import { SILENT_LOGGER } from '../log.ts';
import { NodeLease } from './node-lease.ts';

/** A store whose keep-alive takes `delayMs` of the fake monotonic clock. */
function slowKeepAlive(store: Store, clock: { now: number }, delayMs: () => number): Store {
  return new Proxy(store, {
    get(target, key, receiver) {
      if (key === 'keepAlive') {
        return async (id: string) => {
          clock.now += delayMs();
          return target.keepAlive(id);
        };
      }
      const v = Reflect.get(target, key, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

test('the fence deadline runs from the send time of the last acknowledged keep-alive, never from its answer', async () => {
  const store = await MemoryStore.open();
  const clock = { now: 1_000 };
  let delay = 0;
  const lease = await NodeLease.grant(
    slowKeepAlive(store, clock, () => delay),
    {
      ttlSeconds: 10,
      marginMs: 2_000,
      monotonicMs: () => clock.now,
      logger: SILENT_LOGGER,
    },
  );
  try {
    assert.equal(lease.remainingMs(), 8_000, 'TTL minus margin from the grant');
    clock.now += 7_999;
    lease.assertLive('commit');
    clock.now += 1;
    assert.throws(
      () => lease.assertLive('commit'),
      (e: unknown) => isDotmeshError(e) && e.code === 'UNAVAILABLE',
    );
    // A keep-alive sent at t=9000 and answered 3 s later extends to 9000 + 8000, not 12000 + 8000.
    delay = 3_000;
    assert.equal(await lease.keepAlive(), true);
    assert.equal(clock.now, 12_000);
    assert.equal(lease.remainingMs(), 9_000 + 8_000 - 12_000);
    // A lease the store no longer has: the keep-alive says so.
    await store.revokeLease(lease.id);
    assert.equal(await lease.keepAlive(), false);
  } finally {
    lease.close();
    await store.close();
  }
});

test('a keep-alive that never answers (a frozen etcd member) does not hold back the next ones', async () => {
  const store = await MemoryStore.open();
  let calls = 0;
  let release: () => void = () => {};
  const stuck = new Promise<void>((resolve) => {
    release = resolve;
  });
  const firstHangs = new Proxy(store, {
    get(target, key, receiver) {
      if (key === 'keepAlive') {
        return async (id: string) => {
          if (++calls === 1) await stuck;
          return target.keepAlive(id);
        };
      }
      const v = Reflect.get(target, key, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  // Ticks every 500 ms; the fence passes 1.5 s after the last acknowledged send.
  const lease = await NodeLease.grant(firstHangs, { ttlSeconds: 2, marginMs: 500, logger: SILENT_LOGGER });
  try {
    await new Promise((r) => setTimeout(r, 3_000));
    assert.ok(calls >= 3, `keep-alives went on while the first hung (${calls} sent)`);
    lease.assertLive('commit');
  } finally {
    release();
    lease.close();
    await store.close();
  }
});
