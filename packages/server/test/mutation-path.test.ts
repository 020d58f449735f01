import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { MemoryDriver } from '@dotmesh/storage';
import { MemoryStore, type Store, type TxnRequest } from '@dotmesh/store';
import { KEYS } from '../src/cluster/store-keys.ts';
import { type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';

/**
 * The one mutation path (dots/mutation/mutations.ts): every change is stored in one
 * transaction fenced on the master key and the node's lease, undone in the pool when that
 * fails; the store holds one key per commit; start-up touches only this node's keys.
 */
const NODE = 'feedfacecafe0001';
const OTHER = 'beefbeefbeef0002';

async function withServer(fn: (s: InProcessServer) => Promise<void>, o: Parameters<typeof startInProcess>[0] = {}) {
  const s = await startInProcess(o);
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

/**
 * A MemoryStore that can make the next transaction writing a commit key fail as an etcd write
 * does when it times out (UNAVAILABLE, outcome unknown) — applied first or not — after which
 * every call fails until `setDown(false)` (etcd without quorum), so the mutation path must settle
 * it from the store once it answers.
 */
async function ambiguousStore() {
  const inner = await MemoryStore.open();
  let next: boolean | undefined;
  let down = false;
  const unavailable = (outcome?: 'unknown') =>
    new DotmeshError('UNAVAILABLE', 'etcd at http://10.0.0.1:2379 is unavailable: 4 DEADLINE_EXCEEDED', {
      ...(outcome ? { data: { outcome } } : {}),
    });
  const overrides: Partial<Store> = {
    txn: async (request: TxnRequest) => {
      const writesCommit = request.success.some((op) => op.type === 'put' && op.key.startsWith(KEYS.commitsPrefix));
      if (next === undefined || !writesCommit) {
        if (down) throw unavailable('unknown');
        return inner.txn(request);
      }
      const apply = next;
      next = undefined;
      if (apply) await inner.txn(request);
      down = true; // and the store answers nothing until the test says so
      throw unavailable('unknown');
    },
    get: (key: string) => (down ? Promise.reject(unavailable()) : inner.get(key)),
    revision: () => (down ? Promise.reject(unavailable()) : inner.revision()),
  };
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const own = overrides[prop as keyof Store];
      if (own !== undefined) return own;
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as Store;
  return { store, timeOutNextCommit: (applied: boolean) => (next = applied), setDown: (d: boolean) => (down = d) };
}

const commit = (s: InProcessServer, name: string, message: string, metadata: Record<string, string> = {}) =>
  s.admin.call('Commit', { Namespace: 'admin', Name: name, Branch: '', Message: message, Metadata: metadata });
const commitIds = async (s: InProcessServer, name: string) =>
  (await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' })).map((c) => c.Id);

describe('the mutation path', () => {
  test('a master key moved by another writer fails the mutation (NOT_MASTER) and undoes it in the pool', async () => {
    await withServer(async (s) => {
      await s.admin.call('Create', { Namespace: 'admin', Name: 'moved' });
      const dotId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'moved', Branch: '' });
      const before = await commitIds(s, 'moved');
      // Another node takes the branch (a compare-and-swap this node has not seen yet).
      await s.store.put(KEYS.master(dotId), JSON.stringify({ filesystem_id: dotId, node_id: OTHER }));
      await rejectsCode(commit(s, 'moved', 'too late', { '#commit-id': 'late' }), 'NOT_MASTER');
      assert.deepEqual(
        (await s.driver.listCommits(dotId)).map((c) => c.id),
        before,
        'the snapshot taken before the store write was deleted again',
      );
      assert.equal(await s.store.get(KEYS.commit(NODE, dotId, 'late')), undefined, 'nothing of it was stored');
      assert.deepEqual(await commitIds(s, 'moved'), before);
    });
  });

  test('a node whose lease is gone changes nothing', async () => {
    await withServer(async (s) => {
      await s.admin.call('Create', { Namespace: 'admin', Name: 'leased' });
      const dotId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'leased', Branch: '' });
      const before = await s.driver.listCommits(dotId);
      await s.store.revokeLease(s.server.ctx.mutations.leaseId);
      await assert.rejects(commit(s, 'leased', 'no lease'), (e: unknown) => {
        const code = (e as { code?: string }).code;
        return code === 'LEASE_NOT_FOUND' || code === 'UNAVAILABLE';
      });
      assert.equal((await s.driver.listCommits(dotId)).length, before.length, 'the commit was undone in the pool');
      // Own keys were bound to the lease: revoking it removed them.
      assert.deepEqual((await s.store.range(KEYS.nodeCommits(NODE))).kvs, []);
    });
  });

  test('an armed failpoint before the store write leaves no trace: the pool step is undone', async () => {
    await withServer(async (s) => {
      await s.admin.call('Create', { Namespace: 'admin', Name: 'faulty' });
      const dotId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'faulty', Branch: '' });
      const before = await commitIds(s, 'faulty');
      await s.admin.call('SetDebugFlag', { FlagName: 'commit.after-snapshot', FlagValue: 'error' });
      await rejectsCode(commit(s, 'faulty', 'injected', { '#commit-id': 'injected' }), 'INJECTED_FAULT');
      assert.deepEqual(
        (await s.driver.listCommits(dotId)).map((c) => c.id),
        before,
      );
      const id = await commit(s, 'faulty', 'again', { '#commit-id': 'injected' });
      assert.equal(id, 'injected', 'the id is free again');
    });
  });

  test('one store key per commit held: no value grows with the history', async () => {
    await withServer(async (s) => {
      await s.admin.call('Create', { Namespace: 'admin', Name: 'long' });
      const dotId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'long', Branch: '' });
      const n = 1500;
      for (let i = 0; i < n; i++) await commit(s, 'long', `commit ${i}`);
      const held = (await s.store.range(KEYS.commitsOf(NODE, dotId))).kvs;
      assert.equal(held.length, n + 1);
      const all = (await s.store.range('dotmesh.io/')).kvs;
      const largest = Math.max(...all.map((kv) => Buffer.byteLength(kv.value)));
      assert.ok(largest < 2048, `the largest value is ${largest} bytes`);
      const state = JSON.parse((await s.store.get(KEYS.state(NODE, dotId)))!.value);
      assert.equal(state.commitCount, n + 1);
      assert.equal(state.head.commitId, (await commitIds(s, 'long')).at(-1));
    });
  });

  for (const applied of [true, false]) {
    test(`a store write that times out ${applied ? 'after etcd applied it' : 'without being applied'}: UNAVAILABLE at once, then the commit is ${applied ? 'kept' : 'undone'} once the store answers`, async () => {
      const { store, timeOutNextCommit, setDown } = await ambiguousStore();
      await withServer(
        async (s) => {
          await s.admin.call('Create', { Namespace: 'admin', Name: 'unsure' });
          const dotId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'unsure', Branch: '' });
          const before = await commitIds(s, 'unsure');
          timeOutNextCommit(applied);
          await rejectsCode(
            commit(s, 'unsure', 'unsure', { '#commit-id': 'unsure' }),
            'UNAVAILABLE',
            /did not confirm it in time/,
          );
          assert.deepEqual(s.server.ctx.mutations.unsettled, [dotId], 'the dot waits to be settled');
          await rejectsCode(commit(s, 'unsure', 'meanwhile'), 'UNAVAILABLE');
          assert.equal(
            (await s.driver.listCommits(dotId)).some((c) => c.id === 'unsure'),
            true,
            'the snapshot stays while the outcome is unknown',
          );
          setDown(false);
          await s.server.ctx.mutations.settled(dotId);
          assert.deepEqual(s.server.ctx.mutations.unsettled, []);
          const stored = (await store.get(KEYS.commit(NODE, dotId, 'unsure'))) !== undefined;
          const inPool = (await s.driver.listCommits(dotId)).some((c) => c.id === 'unsure');
          assert.equal(stored, applied, 'the store holds the commit exactly when it applied the write');
          assert.equal(inPool, applied, 'the pool agrees with the store');
          assert.deepEqual(await commitIds(s, 'unsure'), applied ? [...before, 'unsure'] : before, 'and so does the view');
          const after = await commit(s, 'unsure', 'after');
          assert.deepEqual(await commitIds(s, 'unsure'), [...(applied ? [...before, 'unsure'] : before), after]);
        },
        { store },
      );
    });
  }
});

describe('start-up reconcile and the store', () => {
  test('touches only its own keys: another node’s registry, masterNodes, commits and states stay as they are', async () => {
    const store = await MemoryStore.open();
    const foreign: Record<string, string> = {
      [KEYS.registry('admin', 'theirs')]: JSON.stringify({
        Id: '11111111-1111-4111-8111-111111111111',
        OwnerId: '00000000-0000-0000-0000-000000000000',
        Name: { Namespace: 'admin', Name: 'theirs' },
        CollaboratorIds: [],
      }),
      [KEYS.master('11111111-1111-4111-8111-111111111111')]: JSON.stringify({
        filesystem_id: '11111111-1111-4111-8111-111111111111',
        node_id: OTHER,
      }),
      [KEYS.commit(OTHER, '11111111-1111-4111-8111-111111111111', 'c1')]: JSON.stringify({
        Id: 'c1',
        Metadata: {},
        Parent: null,
      }),
      [KEYS.state(OTHER, '11111111-1111-4111-8111-111111111111')]: '{"id":"x"}',
    };
    for (const [k, v] of Object.entries(foreign)) await store.put(k, v);
    await withServer(
      async (s) => {
        await s.admin.call('Create', { Namespace: 'admin', Name: 'mine' });
        const again = await s.restart();
        try {
          for (const [k, v] of Object.entries(foreign)) assert.equal((await store.get(k))?.value, v, k);
          assert.ok(await store.get(KEYS.registry('admin', 'mine')));
        } finally {
          await again.close();
        }
      },
      { store },
    );
  });

  test('a dot deleted while this node was down is destroyed at start; its name stays free', async () => {
    const driver = new MemoryDriver({ poolId: NODE });
    const store = await MemoryStore.open();
    const s = await startInProcess({ driver, store });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'doomed' });
    const dotId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'doomed', Branch: '' });
    // Another node deletes it meanwhile: a tombstone, the name and the master key gone.
    const back = await s.restart(async () => {
      await store.put(KEYS.deleted(dotId), JSON.stringify({ filesystem_id: dotId }));
      await store.delete(KEYS.registry('admin', 'doomed'));
      await store.delete(KEYS.master(dotId));
    });
    try {
      assert.deepEqual(await driver.listVolumes(), []);
      assert.match(back.server.recovery.join('\n'), /destroyed this node's copy of admin\/doomed/);
      assert.equal(await store.get(KEYS.registry('admin', 'doomed')), undefined);
      assert.equal(await back.admin.call('Exists', { Namespace: 'admin', Name: 'doomed', Branch: '' }), '');
    } finally {
      await back.close();
    }
  });

  test('a name the store gives to another dot is never taken: the local dot becomes <name>-RECOVERED-<id>', async () => {
    const driver = new MemoryDriver({ poolId: NODE });
    const store = await MemoryStore.open();
    const s = await startInProcess({ driver, store });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'clash' });
    const dotId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'clash', Branch: '' });
    const theirs = JSON.stringify({
      Id: '22222222-2222-4222-8222-222222222222',
      OwnerId: '00000000-0000-0000-0000-000000000000',
      Name: { Namespace: 'admin', Name: 'clash' },
      CollaboratorIds: [],
    });
    // Meanwhile the store came to give the name to another dot (a restored backup, another node).
    const back = await s.restart(() => store.put(KEYS.registry('admin', 'clash'), theirs).then(() => undefined));
    try {
      assert.equal((await store.get(KEYS.registry('admin', 'clash')))?.value, theirs, 'the store keeps its mapping');
      const renamed = `clash-RECOVERED-${dotId.slice(0, 8)}`;
      assert.equal(await back.admin.call('Lookup', { Namespace: 'admin', Name: renamed, Branch: '' }), dotId);
      assert.equal(JSON.parse((await store.get(KEYS.registry('admin', renamed)))!.value).Id, dotId);
    } finally {
      await back.close();
    }
  });
});
