import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Cleanup, type EtcdProcess, skipUnless, startEtcd, waitFor } from '@dotmesh/testkit';
import { Etcd3 } from 'etcd3';
import { runStoreConformance } from '../conformance.ts';
import type { WatchEvent } from '../store.ts';
import { EtcdStore } from './etcd-store.ts';

const cleanup = new Cleanup();
after(() => cleanup.run());

/** One plain etcd for the conformance suite; each test gets a fresh key prefix (an empty store). */
let plain: Promise<EtcdProcess> | undefined;
const plainEtcd = () => {
  plain ??= startEtcd({ cleanup });
  return plain;
};
let tests = 0;

const skip = skipUnless(['etcd']);

describe('EtcdStore', { skip }, () => {
  runStoreConformance('EtcdStore', async () => {
    const etcd = await plainEtcd();
    const options = { endpoints: etcd.endpoints, prefix: `conformance/${++tests}/` };
    return {
      store: await EtcdStore.open(options),
      reopen: () => EtcdStore.open(options),
      cleanup: async () => {},
    };
  });

  test('keys live under the prefix: other prefixes and raw etcd keys are invisible', async () => {
    const etcd = await plainEtcd();
    const a = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: 'iso/a/' });
    const b = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: 'iso/b/' });
    try {
      await a.put('k', 'from a');
      await b.put('k', 'from b');
      assert.equal((await a.get('k'))?.value, 'from a');
      assert.deepEqual(
        (await b.range('')).kvs.map((kv) => [kv.key, kv.value]),
        [['k', 'from b']],
      );
      const raw = new Etcd3({ hosts: etcd.endpoints });
      assert.equal(await raw.get('iso/a/k').string(), 'from a');
      raw.close();
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a watch from a compacted revision fails with CONFLICT (compacted)', async () => {
    const etcd = await plainEtcd();
    const store = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: 'compact/' });
    const raw = new Etcd3({ hosts: etcd.endpoints });
    try {
      const first = await store.put('k', '1');
      await store.put('k', '2');
      const last = await store.put('k', '3');
      await raw.kv.compact({ revision: last.revision, physical: true });
      await assert.rejects(
        store.watch('', { fromRevision: first.revision }, () => {}),
        { code: 'CONFLICT', message: /compacted/ },
      );
      const seen: number[] = [];
      const watcher = await store.watch('', { fromRevision: last.revision }, (events) =>
        seen.push(...events.map((e) => e.revision)),
      );
      const next = await store.put('k', '4');
      await waitFor(() => seen.includes(next.revision), { what: 'the live event' });
      assert.deepEqual(seen, [next.revision]);
      await watcher.cancel();
    } finally {
      raw.close();
      await store.close();
    }
  });

  test('closing the store ends its watches with UNAVAILABLE', async () => {
    const etcd = await plainEtcd();
    const store = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: 'close/' });
    const errors: Error[] = [];
    await store.watch('', { onError: (e) => errors.push(e) }, () => {});
    await store.close();
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as { code?: string }).code, 'UNAVAILABLE');
    await assert.rejects(
      store.watch('', {}, () => {}),
      { code: 'UNAVAILABLE' },
    );
  });

  test('bad options fail with INVALID_ARGUMENT; an unreachable etcd with UNAVAILABLE naming it', async () => {
    await assert.rejects(EtcdStore.open({ endpoints: [] }), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(EtcdStore.open({ endpoints: ['127.0.0.1:2379'] }), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(EtcdStore.open({ endpoints: ['http://127.0.0.1:1'], dialTimeoutMs: 1000 }), {
      code: 'UNAVAILABLE',
      message: /http:\/\/127\.0\.0\.1:1/,
    });
  });
});

describe('EtcdStore over TLS with client certificates', { skip }, () => {
  let etcd: EtcdProcess;
  const tlsEtcd = async () => {
    etcd ??= await startEtcd({ cleanup, tls: true });
    return etcd;
  };

  test('connects with the client certificate', async () => {
    const e = await tlsEtcd();
    const store = await EtcdStore.open({ endpoints: e.endpoints, ca: e.caPem, cert: e.certPem, key: e.keyPem });
    try {
      await store.put('tls/k', 'v');
      assert.equal((await store.get('tls/k'))?.value, 'v');
    } finally {
      await store.close();
    }
  });

  test('fails clearly without a client certificate, or without the CA', async () => {
    const e = await tlsEtcd();
    await assert.rejects(EtcdStore.open({ endpoints: e.endpoints, ca: e.caPem, dialTimeoutMs: 2000 }), {
      code: 'UNAVAILABLE',
      message: new RegExp(e.endpoints[0]!.replace(/[.]/g, '\\.')),
    });
    await assert.rejects(EtcdStore.open({ endpoints: e.endpoints, dialTimeoutMs: 2000 }), { code: 'INVALID_ARGUMENT' });
  });

  test('etcd killed → UNAVAILABLE; restarted → works again, and a watch resumes without gaps', async () => {
    const e = await tlsEtcd();
    const store = await EtcdStore.open({
      endpoints: e.endpoints,
      ca: e.caPem,
      cert: e.certPem,
      key: e.keyPem,
      prefix: 'restart/',
      requestTimeoutMs: 3000,
    });
    try {
      const events: WatchEvent[] = [];
      const errors: Error[] = [];
      const watcher = await store.watch('', { onError: (err) => errors.push(err) }, (batch) => events.push(...batch));
      const before = await store.put('a', '1');
      await e.kill9();
      await assert.rejects(store.put('b', '2'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'UNAVAILABLE');
        assert.match(err.message, /127\.0\.0\.1/);
        return true;
      });
      await e.start();
      const afterRestart = await waitFor(() => store.put('c', '3').catch(() => undefined), {
        timeoutMs: 20_000,
        intervalMs: 250,
        what: 'a put after the restart',
      });
      assert.ok(afterRestart.revision > before.revision);
      assert.equal((await store.get('a'))?.value, '1');
      await waitFor(() => events.some((ev) => ev.key === 'c'), { timeoutMs: 30_000, what: 'the watch to resume' });
      assert.deepEqual(
        events.map((ev) => ev.key),
        ['a', 'c'],
      );
      assert.deepEqual(errors, []);
      await watcher.cancel();
    } finally {
      await store.close();
    }
  });
});
