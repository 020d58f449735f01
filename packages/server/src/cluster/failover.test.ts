import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CommitOrigin } from '@dotmesh/core';
import { chooseNewMaster, Failover, type FailoverContext } from './failover.ts';
import { MasterNodes } from './master-nodes.ts';
import { pinSource, withPinned } from './pinned.ts';
import type { BranchStateRecord } from './store-keys.ts';
import type { ClusterNode } from './view.ts';

/** A view of live nodes and their copies of branch `f`, each copy holding the history `c1…c<n>`. */
function view(live: Record<string, number>, copies: Record<string, number>, clusterPort = 1) {
  const history = (n: number): CommitOrigin[] => Array.from({ length: n }, (_, i) => ({ fsId: 'f', commitId: `c${i + 1}` }));
  return {
    node: (id: string): ClusterNode | undefined => (id in live ? { id, addresses: ['10.0.0.1'], clusterPort } : undefined),
    copiesOf: (fsId: string): ReadonlyMap<string, BranchStateRecord> =>
      new Map(
        fsId !== 'f'
          ? []
          : Object.entries(copies).map(([id, n]) => [
              id,
              {
                id,
                filesystem_id: 'f',
                state: { state: 'inactive' as const, status: '' },
                head: n === 0 ? null : { fsId: 'f', commitId: `c${n}` },
                commitCount: n,
              },
            ]),
      ),
    historyOn: (nodeId: string, head: CommitOrigin | null) =>
      head ? history(Math.min(Number(head.commitId.slice(1)), copies[nodeId] ?? 0)) : [],
  };
}

describe('chooseNewMaster', () => {
  it('takes the live node whose copy holds the longest history', () => {
    const v = view({ n2: 1, n3: 1 }, { gone: 5, n2: 3, n3: 4 });
    assert.equal(chooseNewMaster(v, 'f', 'gone')?.nodeId, 'n3');
    assert.equal(chooseNewMaster(v, 'f', 'gone')?.history.length, 4);
  });

  it('breaks ties by the lowest node id, whatever the order the copies come in', () => {
    assert.equal(chooseNewMaster(view({ nb: 1, na: 1 }, { nb: 3, na: 3 }), 'f', 'gone')?.nodeId, 'na');
  });

  it('never picks the gone node, a node that is not live, a copy without a head, or a node without a cluster port', () => {
    assert.equal(chooseNewMaster(view({ gone: 1, n2: 1 }, { gone: 9, n2: 2 }), 'f', 'gone')?.nodeId, 'n2');
    assert.equal(chooseNewMaster(view({ n2: 1 }, { n2: 2, n3: 7 }), 'f', 'gone')?.nodeId, 'n2');
    assert.equal(chooseNewMaster(view({ n2: 1 }, { n2: 0 }), 'f', 'gone'), undefined);
    assert.equal(chooseNewMaster(view({ n2: 1 }, { n2: 2 }, 0), 'f', 'gone'), undefined);
    assert.equal(chooseNewMaster(view({ n2: 1 }, { n2: 2 }), 'other', 'gone'), undefined, 'no copy: nowhere to go');
  });
});

describe('withPinned and pinSource', () => {
  it('pins and unpins the dot and its branches; nothing left pinned removes the record', () => {
    const a = withPinned(undefined, 'd', 'f1', true);
    assert.deepEqual(a, { dot_id: 'd', dot: false, branches: ['f1'] });
    assert.deepEqual(withPinned(a, 'd', 'f1', true), a, 'pinning twice changes nothing');
    const b = withPinned(a, 'd', null, true);
    assert.deepEqual(b, { dot_id: 'd', dot: true, branches: ['f1'] });
    assert.equal(pinSource(b, 'f1'), 'branch');
    assert.equal(pinSource(b, 'f2'), 'dot', 'a branch of a pinned dot is pinned');
    const c = withPinned(b, 'd', 'f1', false);
    assert.equal(pinSource(c, 'f1'), 'dot', 'unpinning the branch leaves the dot pinned');
    assert.equal(withPinned(c, 'd', null, false), undefined);
    assert.equal(pinSource(undefined, 'f1'), '');
    assert.deepEqual(a, { dot_id: 'd', dot: false, branches: ['f1'] }, 'the record given is not changed');
  });
});

describe('Failover', () => {
  /**
   * A node `me` of a cluster whose view says: branch `f` (dot `d`) is mastered by `gone` at
   * revision 7; `me` and `other` are live and hold copies (`me` the longer history unless
   * `otherAhead`). The mutation path is a fake that records the transaction it is given (the
   * takeover that follows finds no real index and stops, logged).
   */
  function setup(o: { goneLive?: boolean; otherAhead?: boolean; pinned?: boolean } = {}) {
    let clock = 0;
    const restarting = new Set<string>();
    const listeners: Array<(c: { kind: 'node'; nodeId: string }) => void> = [];
    const live = new Set(['me', 'other', ...(o.goneLive ? ['gone'] : [])]);
    const masterNodes = new MasterNodes('me');
    masterNodes.set('f', 'gone', 7);
    const copies = { me: o.otherAhead ? 2 : 3, other: o.otherAhead ? 3 : 2 };
    const base = view(Object.fromEntries([...live].map((n) => [n, 1])), copies);
    const writes: Array<{ compares: unknown[]; ops: unknown[] }> = [];
    const ctx = {
      nodeId: 'me',
      masterNodes,
      logger: { warn: () => {}, info: () => {}, debug: () => {}, error: () => {} },
      index: {
        branches: new Map([['f', { label: { dotId: 'd' } }]]),
        requireBranch: () => ({ label: { dotId: 'd' } }),
      },
      view: {
        ...base,
        node: (id: string) => (live.has(id) ? base.node(id) : undefined),
        branch: (fsId: string) => (fsId === 'f' ? { fsId, dotId: 'd', name: 'master', origin: null } : undefined),
        isDeleted: () => false,
        pinnedOf: () => (o.pinned ? { dot_id: 'd', dot: true, branches: [], revision: 5 } : undefined),
        onChange: (l: (typeof listeners)[number]) => {
          listeners.push(l);
          return () => {};
        },
      },
      mutations: {
        run: async (_scope: unknown, body: (tx: unknown) => Promise<unknown>) => {
          const w = { compares: [] as unknown[], ops: [] as unknown[] };
          const result = await body({
            storeCompare: (...c: unknown[]) => w.compares.push(...c),
            storeOps: (...ops: unknown[]) => w.ops.push(...ops),
          });
          if (w.ops.length > 0) {
            writes.push(w);
            masterNodes.set('f', 'me', 8); // what the mutation path's store write does
          }
          return result;
        },
      },
    } as unknown as FailoverContext;
    const failover = new Failover(
      ctx,
      { enabled: true, sweepMs: 60_000, absentGraceMs: 10_000, restartPending: async (id) => restarting.has(id) },
      () => clock,
    );
    return {
      failover,
      writes,
      restarting,
      advance: (ms: number) => {
        clock += ms;
      },
      leave: (nodeId: string) => {
        live.delete(nodeId);
        for (const l of listeners) l({ kind: 'node', nodeId });
      },
    };
  }

  it('takes a branch over by one compare-and-swap when its master left and this node holds the newest copy', async () => {
    const t = setup({ goneLive: true });
    t.failover.start();
    await t.failover.sweep();
    assert.equal(t.writes.length, 0, 'its master is live: nothing moves');
    t.leave('gone');
    await new Promise((r) => setImmediate(r));
    await t.failover.sweep();
    await t.failover.stop();
    assert.equal(t.writes.length, 1, 'the lease expired: at once, no grace');
    assert.deepEqual(t.writes[0]?.compares, [
      { key: 'dotmesh.io/filesystems/masters/f', target: 'modRevision', op: '==', value: 7 },
      { key: 'dotmesh.io/servers/addresses/gone', target: 'createRevision', op: '==', value: 0 },
      { key: 'dotmesh.io/servers/restarting/gone', target: 'createRevision', op: '==', value: 0 },
      { key: 'dotmesh.io/filesystems/pinned/d', target: 'createRevision', op: '==', value: 0 },
      { key: 'dotmesh.io/filesystems/deleted/f', target: 'createRevision', op: '==', value: 0 },
    ]);
    assert.deepEqual(t.writes[0]?.ops, [
      { type: 'put', key: 'dotmesh.io/filesystems/masters/f', value: JSON.stringify({ filesystem_id: 'f', node_id: 'me' }) },
    ]);
  });

  it('waits one grace period for a master never seen live since this node started (the cluster restarting)', async () => {
    const t = setup();
    t.failover.start();
    await t.failover.sweep();
    assert.equal(t.writes.length, 0, 'it may be starting too');
    t.advance(10_000);
    await t.failover.sweep();
    await t.failover.stop();
    assert.equal(t.writes.length, 1);
  });

  it('leaves the branches of a node that announced a planned restart while its grace runs', async () => {
    const t = setup({ goneLive: true });
    t.restarting.add('gone');
    t.failover.start();
    t.leave('gone');
    await new Promise((r) => setImmediate(r));
    t.advance(60_000);
    await t.failover.sweep();
    assert.equal(t.writes.length, 0, 'its planned restart is awaited');
    assert.equal(t.failover.state()['failover.awaitingRestart'], '1');
    t.restarting.delete('gone'); // its grace ended without it coming back
    await t.failover.sweep();
    await t.failover.stop();
    assert.equal(t.writes.length, 1);
  });

  it('leaves a pinned branch, and a branch another node holds more of', async () => {
    for (const o of [{ pinned: true }, { otherAhead: true }]) {
      const t = setup(o);
      t.failover.start();
      t.advance(60_000);
      await t.failover.sweep();
      await t.failover.stop();
      assert.equal(t.writes.length, 0, JSON.stringify(o));
    }
  });
});
