import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { MemoryStore, type Store } from '@dotmesh/store';
import { Authenticator } from '../auth/authenticator.ts';
import { KnownUsers } from '../auth/known-users.ts';
import { UserService } from '../auth/users.ts';
import { SILENT_LOGGER } from '../log.ts';
import { StoreHealth } from './store-health.ts';

/**
 * A MemoryStore whose every call fails as etcd does without quorum while `down` is set (the
 * real thing is in e2e/test/cluster-managed-etcd.test.ts, a frozen member of two).
 */
async function flakyStore(): Promise<{ store: Store; setDown(down: boolean): void }> {
  const inner = await MemoryStore.open();
  let down = false;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const method = (value as (...a: unknown[]) => unknown).bind(target);
      if (prop === 'close') return method;
      return (...args: unknown[]) =>
        down
          ? Promise.reject(new DotmeshError('UNAVAILABLE', 'etcd at https://10.0.0.1:2379 is unavailable: etcdserver: no leader'))
          : method(...args);
    },
  });
  return { store, setDown: (d) => (down = d) };
}

describe('store health', () => {
  test('one endpoint failing a call while the store answers changes nothing', async () => {
    const { store: inner } = await flakyStore();
    let failNext = true;
    const oneBadEndpoint: Store = Object.assign(Object.create(inner) as Store, {
      get: (key: string) => {
        if (!failNext) return inner.get(key);
        failNext = false;
        return Promise.reject(
          new DotmeshError('UNAVAILABLE', 'etcd at https://10.0.0.9:2379 is unavailable: No connection established'),
        );
      },
      revision: () => inner.revision(),
    });
    const store = new StoreHealth(oneBadEndpoint, { logger: SILENT_LOGGER, probeIntervalMs: 20 });
    try {
      await assert.rejects(store.get('a'), { code: 'UNAVAILABLE' });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(store.available, true, 'the probe answered');
      store.assertAvailable('commit admin/x');
    } finally {
      await store.close();
    }
  });

  test('a call failing with UNAVAILABLE, confirmed by a probe, marks the store unavailable; writes are refused at once; a probe brings it back', async () => {
    const { store: inner, setDown } = await flakyStore();
    const store = new StoreHealth(inner, { logger: SILENT_LOGGER, probeIntervalMs: 20 });
    try {
      await store.put('a', '1');
      assert.equal(store.available, true);
      store.assertAvailable('commit admin/x');
      setDown(true);
      await assert.rejects(store.get('a'), { code: 'UNAVAILABLE' });
      const confirmed = Date.now() + 5000;
      while (store.available && Date.now() < confirmed) await new Promise((r) => setTimeout(r, 5));
      assert.equal(store.available, false, 'a probe confirmed it');
      assert.throws(
        () => store.assertAvailable('commit admin/x'),
        (e: DotmeshError) => {
          assert.equal(e.code, 'UNAVAILABLE');
          assert.match(e.message, /^cannot commit admin\/x: etcd at https:\/\/10\.0\.0\.1:2379 is unavailable/);
          assert.match(e.hint ?? '', /reads keep working/);
          return true;
        },
      );
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(store.available, false, 'the probe fails while the store is down');
      setDown(false);
      const until = Date.now() + 5000;
      while (!store.available && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      assert.equal(store.available, true, 'a probe that answers marks it available');
      assert.equal((await store.get('a'))?.value, '1');
    } finally {
      await store.close();
    }
  });

  test('a store that hangs (etcd without quorum answers no read) is found unavailable by a probe that stops waiting; a user read that hangs falls back to the last record at once', async () => {
    const inner = await MemoryStore.open();
    let hang = false;
    const never = new Promise<never>(() => {});
    const writes = new Set(['put', 'delete', 'deletePrefix', 'txn']);
    // Reads never answer; writes fail as the etcd store's do once their write timeout passed.
    const hanging = new Proxy(inner, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        const method = (value as (...a: unknown[]) => unknown).bind(target);
        if (prop === 'close') return method;
        return (...args: unknown[]) => {
          if (!hang) return method(...args);
          if (!writes.has(String(prop))) return never;
          return Promise.reject(
            new DotmeshError('UNAVAILABLE', 'etcd at https://10.0.0.1:2379 is unavailable: 4 DEADLINE_EXCEEDED', {
              data: { outcome: 'unknown' },
            }),
          );
        };
      },
    });
    const store = new StoreHealth(hanging, { logger: SILENT_LOGGER, probeIntervalMs: 20, probeTimeoutMs: 200 });
    try {
      const users = new UserService(store);
      await users.ensureAdmin({ password: 'admin-password', apiKey: 'ADMINKEY7Q4ZL2MXW9' });
      const known = new KnownUsers(users, { storeAvailable: () => store.available, logger: SILENT_LOGGER, readGraceMs: 200 });
      const auth = new Authenticator(known);
      assert.ok(await auth.authenticate('admin', 'ADMINKEY7Q4ZL2MXW9', '10.1.0.1'));

      hang = true;
      const started = Date.now();
      assert.ok(await auth.authenticate('admin', 'ADMINKEY7Q4ZL2MXW9', '10.1.0.1'), 'the last record answers');
      const took = Date.now() - started;
      assert.ok(took < 2000, `without waiting for the store's own timeout (${took} ms)`);
      const next = Date.now();
      assert.ok(await auth.authenticate('admin', 'ADMINKEY7Q4ZL2MXW9', '10.1.0.1'));
      assert.ok(Date.now() - next < 150, 'while that read hangs, the next lookup does not wait for the store again');

      await assert.rejects(store.put('x', '1'), { code: 'UNAVAILABLE' });
      const confirmed = Date.now() + 5000;
      while (store.available && Date.now() < confirmed) await new Promise((r) => setTimeout(r, 5));
      assert.equal(store.available, false, 'the probe gave up on the hanging store');
      assert.throws(
        () => store.assertAvailable('commit admin/x'),
        /the cluster store is unavailable: no answer to a read within 200 ms/,
      );

      hang = false;
      const until = Date.now() + 5000;
      while (!store.available && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      assert.equal(store.available, true, 'a probe that answers brings writes back');
    } finally {
      hang = false;
      await store.close();
    }
  });

  test('without the store, a user this node read logs in from the last record; one it never read cannot; the store back, changes count', async () => {
    const { store: inner, setDown } = await flakyStore();
    const store = new StoreHealth(inner, { logger: SILENT_LOGGER, probeIntervalMs: 20 });
    try {
      const users = new UserService(store);
      await users.ensureAdmin({ password: 'admin-password', apiKey: 'ADMINKEY7Q4ZL2MXW9' });
      await users.register({ name: 'alice', email: 'alice@example.com', password: 'alice-password' });
      const known = new KnownUsers(users, { storeAvailable: () => store.available, logger: SILENT_LOGGER });
      const auth = new Authenticator(known);
      assert.ok(await auth.authenticate('admin', 'ADMINKEY7Q4ZL2MXW9', '10.1.0.1'));
      const adminId = (await known.byName('admin'))!.Id;

      setDown(true);
      assert.ok(await auth.authenticate('admin', 'ADMINKEY7Q4ZL2MXW9', '10.1.0.1'), 'the failing read falls back');
      const confirmed = Date.now() + 5000;
      while (store.available && Date.now() < confirmed) await new Promise((r) => setTimeout(r, 5));
      assert.equal(store.available, false);
      assert.ok(await auth.authenticate('admin', 'ADMINKEY7Q4ZL2MXW9', '10.1.0.1'), 'no read at all while unavailable');
      assert.equal(await auth.authenticate('admin', 'wrong-key', '10.1.0.1'), null, 'a wrong secret is still refused');
      assert.equal((await known.byId(adminId))?.Name, 'admin', 'by id too (a call another node passed on)');
      await assert.rejects(auth.authenticate('alice', 'alice-password', '10.1.0.1'), (e: DotmeshError) => {
        assert.equal(e.code, 'UNAVAILABLE');
        assert.match(e.message, /cannot check user alice: the cluster store is unavailable/);
        return true;
      });

      setDown(false);
      const until = Date.now() + 5000;
      while (!store.available && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      assert.ok(await auth.authenticate('alice', 'alice-password', '10.1.0.1'));
      await users.ensureAdmin({ password: 'admin-password2', apiKey: 'ADMINKEY2NEW4ZL2MXW9', replaceExisting: true });
      assert.equal(await auth.authenticate('admin', 'ADMINKEY7Q4ZL2MXW9', '10.1.0.1'), null, 'the old key no longer counts');
      assert.ok(await auth.authenticate('admin', 'ADMINKEY2NEW4ZL2MXW9', '10.1.0.1'));
    } finally {
      await store.close();
    }
  });
});
