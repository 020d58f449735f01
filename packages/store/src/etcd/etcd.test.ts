import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { Cleanup, type EtcdProcess, skipUnless, startEtcd, waitFor } from '@dotmesh/testkit';
import { Etcd3 } from 'etcd3';
import { runStoreConformance } from '../conformance.ts';
import type { WatchEvent } from '../store.ts';
import { EtcdStore } from './etcd-store.ts';

const cleanup = new Cleanup();

/**
 * A TCP relay to etcd whose link the test can cut (every connection reset, new ones refused)
 * and restore, so a client is cut off from an etcd that stays up for others; or freeze
 * (connections stay open and new ones are accepted, but nothing passes: a SIGSTOPped member).
 */
async function startTcpProxy(target: string) {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let open = true;
  let frozen = false;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((client) => {
    track(client);
    if (!open) return void client.destroy();
    if (frozen) return void client.pause();
    const upstream = connect(Number(port), hostname);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    restore() {
      open = true;
    },
    freeze() {
      frozen = true;
      for (const s of sockets) {
        s.pause();
        s.unpipe();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
after(() => cleanup.run());

/** One plain etcd for the conformance suite; each test gets a fresh key prefix (an empty store). */
let plain: Promise<EtcdProcess> | undefined;
const plainEtcd = () => {
  plain ??= startEtcd({ cleanup, largeRequests: true });
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

  test('a watch from a compacted revision fails with COMPACTED, naming the revision', async () => {
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
        { code: 'COMPACTED', data: { fromRevision: first.revision } },
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

  test('a watch that comes back after its history was compacted ends with COMPACTED', async () => {
    const etcd = await plainEtcd();
    const proxy = await startTcpProxy(etcd.endpoints[0]!);
    cleanup.add(() => proxy.close(), 'etcd proxy');
    const store = await EtcdStore.open({ endpoints: [proxy.endpoint], prefix: 'cut/', requestTimeoutMs: 3000 });
    const raw = new Etcd3({ hosts: etcd.endpoints });
    try {
      const errors: Error[] = [];
      const seen: string[] = [];
      await store.watch('', { onError: (e) => errors.push(e) }, (events) => seen.push(...events.map((e) => e.key)));
      const delivered = await store.put('a', '1');
      await waitFor(() => seen.includes('a'), { what: 'the first event' });
      // The store is cut off from etcd while its watch's next revisions are written and compacted.
      proxy.cut();
      await raw.put('cut/b').value('2');
      await raw.put('cut/c').value('3');
      const { header } = await raw.kv.range({ key: Buffer.from('cut/c') });
      await raw.kv.compact({ revision: header.revision, physical: true }); // b's revision is gone
      proxy.restore();
      await waitFor(() => errors.length > 0, { timeoutMs: 30_000, intervalMs: 100, what: 'the watch to end' });
      assert.equal(errors.length, 1);
      const error = errors[0] as Error & { code?: string; data?: Record<string, unknown> };
      assert.equal(error.code, 'COMPACTED', error.message);
      assert.deepEqual(error.data, { fromRevision: delivered.revision });
      assert.deepEqual(seen, ['a'], 'no event after the gap');
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

  test('setEndpoints moves a live store to other endpoints: watches go on without gaps or repeats, leases stay, the old link is not used', async () => {
    const etcd = await plainEtcd();
    const first = await startTcpProxy(etcd.endpoints[0]!);
    const second = await startTcpProxy(etcd.endpoints[0]!);
    cleanup.add(() => first.close(), 'first proxy');
    cleanup.add(() => second.close(), 'second proxy');
    const store = await EtcdStore.open({ endpoints: [first.endpoint], prefix: 'switch/', requestTimeoutMs: 3000 });
    try {
      const events: WatchEvent[] = [];
      const errors: Error[] = [];
      await store.watch('', { onError: (e) => errors.push(e) }, (batch) => events.push(...batch));
      const lease = await store.grantLease(30);
      await store.put('before', '1', { lease });
      assert.equal(await store.setEndpoints([first.endpoint]), false, 'the same endpoints change nothing');
      await assert.rejects(store.setEndpoints(['http://127.0.0.1:1']), { code: 'UNAVAILABLE', message: /127\.0\.0\.1:1/ });
      assert.deepEqual(store.endpoints, [first.endpoint], 'a failed change keeps the endpoints');
      assert.equal(await store.setEndpoints([second.endpoint]), true);
      assert.deepEqual(store.endpoints, [second.endpoint]);
      // The first link is gone for good: everything now goes through the second.
      first.cut();
      await store.put('after', '2', { lease });
      await store.keepAlive(lease);
      assert.equal((await store.get('before'))?.value, '1');
      await store.txn({ compare: [], success: [{ type: 'put', key: 'txn', value: '3' }], failure: [] });
      await waitFor(() => events.some((e) => e.key === 'txn'), { timeoutMs: 20_000, what: 'the moved watch to see the txn' });
      assert.deepEqual(
        events.map((e) => e.key),
        ['before', 'after', 'txn'],
        'every change once, in order',
      );
      await store.revokeLease(lease);
      await waitFor(() => events.some((e) => e.type === 'delete' && e.key === 'after'), {
        timeoutMs: 20_000,
        what: 'the lease revocation seen by the watch',
      });
      assert.equal(await store.get('before'), undefined, 'the lease granted before the move still held the keys');
      assert.deepEqual(errors, []);
    } finally {
      await store.close();
    }
  });

  test('a lease keep-alive is answered while one of the endpoints accepts connections but never answers', async () => {
    const etcd = await plainEtcd();
    const good = await startTcpProxy(etcd.endpoints[0]!);
    const frozen = await startTcpProxy(etcd.endpoints[0]!);
    cleanup.add(() => good.close(), 'good proxy');
    cleanup.add(() => frozen.close(), 'frozen proxy');
    // the frozen endpoint first: keep-alives try members in order, so the first one meets it
    const store = await EtcdStore.open({ endpoints: [frozen.endpoint, good.endpoint], prefix: 'frozen/' });
    try {
      const lease = await store.grantLease(30);
      frozen.freeze();
      // Each keep-alive must reach the good member within the request time rather than fail on
      // the frozen one; later ones start on the member that answered.
      for (let i = 0; i < 6; i++) await store.keepAlive(lease);
    } finally {
      await store.close();
    }
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
    etcd ??= await startEtcd({ cleanup, tls: true, largeRequests: true });
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
