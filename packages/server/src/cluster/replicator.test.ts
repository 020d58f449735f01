import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotEvents } from '../dots/mutation/events.ts';
import { MasterNodes } from './master-nodes.ts';
import { type ReplicationSettings, Replicator, type ReplicatorContext } from './replicator.ts';
import type { ViewChange } from './view.ts';

/**
 * The replicator's scheduling, on the real MasterNodes and DotEvents and a cluster view of
 * three nodes: what it sends, when, how many at once, coalescing and backoff. The sends are
 * recorded (the transfers themselves are the e2e tests' part: cluster-replication.test.ts).
 */
const ME = 'node-a';
const B = 'node-b';
const C = 'node-c';

function harness(settings: Partial<ReplicationSettings> = {}) {
  const masterNodes = new MasterNodes(ME);
  const events = new DotEvents();
  const listeners = new Set<(c: ViewChange) => void>();
  const live = new Set([ME, B, C]);
  const heads = new Map<string, string>(); // fsId → head commit here
  const copies = new Map<string, Map<string, string>>(); // fsId → node → advertised head
  const deleted = new Set<string>();
  const ctx = {
    nodeId: ME,
    masterNodes,
    mutations: { events },
    logger: { debug() {}, info() {}, warn() {}, error() {}, child: () => ctx.logger },
    index: {
      dots: new Map([['dot1', { branches: new Map([['master', 'fs1']]) }]]),
      branches: {
        get: (fsId: string) => (heads.has(fsId) ? { label: { dotId: 'dot1' } } : undefined),
      },
      head: (fsId: string) => ({ fsId, commitId: heads.get(fsId)! }),
    },
    view: {
      nodes: () => [...live].sort().map((id) => ({ id, addresses: ['127.0.0.1'], clusterPort: 1 })),
      node: (id: string) => (live.has(id) ? { id, addresses: ['127.0.0.1'], clusterPort: 1 } : undefined),
      copiesOf: (fsId: string) =>
        new Map([...(copies.get(fsId) ?? new Map<string, string>())].map(([n, c]) => [n, { head: { fsId, commitId: c } }])),
      isDeleted: (id: string) => deleted.has(id),
      onChange: (l: (c: ViewChange) => void) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    },
  } as unknown as ReplicatorContext;
  const sent: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  let failFor = new Set<string>();
  let running = 0;
  let maxRunning = 0;
  const replicator = new Replicator({
    ctx,
    settings: { enabled: true, sweepMs: 3_600_000, concurrency: 2, backoffMs: 50, syncCommitTimeoutMs: 1000, ...settings },
    send: async (_dotId, fsId, to) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      try {
        await gate;
        if (failFor.has(to)) throw new Error(`node ${to} unreachable`);
        sent.push(`${fsId}->${to}`);
        const byNode = copies.get(fsId) ?? new Map<string, string>();
        byNode.set(to, heads.get(fsId)!);
        copies.set(fsId, byNode);
      } finally {
        running--;
      }
    },
  });
  return {
    replicator,
    masterNodes,
    events,
    heads,
    copies,
    deleted,
    live,
    sent,
    emit: (c: ViewChange) => {
      for (const l of listeners) l(c);
    },
    hold: () => {
      let open!: () => void;
      gate = new Promise((r) => {
        open = r;
      });
      return open;
    },
    failTo: (nodes: string[]) => {
      failFor = new Set(nodes);
    },
    maxRunning: () => maxRunning,
  };
}

const settle = () => sleep(20);

describe('Replicator', () => {
  test('a commit on a branch this node masters goes to every other live node, once each', async () => {
    const h = harness();
    h.masterNodes.set('fs1', ME, 1);
    h.heads.set('fs1', 'c1');
    h.replicator.start();
    await settle();
    assert.deepEqual(h.sent.sort(), ['fs1->node-b', 'fs1->node-c'], 'the first sweep sends what the nodes lack');
    h.heads.set('fs1', 'c2');
    h.events.emit({ op: 'commit', dotId: 'dot1' });
    await settle();
    assert.equal(h.sent.length, 4, 'a commit: one send to each node');
    h.replicator.sweep();
    await settle();
    assert.equal(h.sent.length, 4, 'nodes advertising the head cost no send');
    await h.replicator.stop();
  });

  test('commits made while a send runs are coalesced into one more send; at most `concurrency` at once', async () => {
    const h = harness({ concurrency: 1 });
    h.masterNodes.set('fs1', ME, 1);
    h.heads.set('fs1', 'c1');
    const open = h.hold();
    h.replicator.start();
    for (let i = 2; i <= 10; i++) {
      h.heads.set('fs1', `c${i}`);
      h.events.emit({ op: 'commit', dotId: 'dot1' });
    }
    open();
    await sleep(100);
    assert.deepEqual(h.sent.sort(), ['fs1->node-b', 'fs1->node-c'], 'ten commits, one send per node');
    assert.equal(h.maxRunning(), 1);
    await h.replicator.stop();
  });

  test('branches another node masters, deleted ones and nodes that are gone are not sent', async () => {
    const h = harness();
    h.masterNodes.set('fs1', B, 1);
    h.heads.set('fs1', 'c1');
    h.replicator.start();
    h.events.emit({ op: 'commit', dotId: 'dot1' });
    await settle();
    assert.deepEqual(h.sent, [], 'node-b masters it');
    h.masterNodes.set('fs1', ME, 2);
    h.deleted.add('dot1');
    h.emit({ kind: 'master', fsId: 'fs1' });
    await settle();
    assert.deepEqual(h.sent, [], 'the dot was deleted');
    h.deleted.clear();
    h.live.delete(C);
    h.replicator.requestAll('fs1');
    await settle();
    assert.deepEqual(h.sent, ['fs1->node-b'], 'node-c is gone');
    await h.replicator.stop();
  });

  test('a failing node is retried with backoff, and at once when it comes back', async () => {
    const h = harness({ backoffMs: 60_000 });
    h.masterNodes.set('fs1', ME, 1);
    h.heads.set('fs1', 'c1');
    h.failTo([C]);
    h.replicator.start();
    await settle();
    assert.deepEqual(h.sent, ['fs1->node-b']);
    assert.equal(h.replicator.state()['replication.failing'], '1');
    h.failTo([]);
    h.replicator.sweep();
    await settle();
    assert.deepEqual(h.sent, ['fs1->node-b'], 'the sweep does not cut the backoff short');
    h.emit({ kind: 'node', nodeId: C });
    await settle();
    assert.deepEqual(h.sent, ['fs1->node-b', 'fs1->node-c'], 'node-c came back: sent at once');
    assert.equal(h.replicator.state()['replication.failing'], '0');
    await h.replicator.stop();
  });

  test('sendNow waits for a background send of the same branch and node', async () => {
    const h = harness();
    h.masterNodes.set('fs1', ME, 1);
    h.heads.set('fs1', 'c1');
    const open = h.hold();
    h.replicator.start();
    await settle();
    let handoffDone = false;
    const handoff = h.replicator.sendNow('dot1', 'fs1', B).then(() => {
      handoffDone = true;
    });
    await settle();
    assert.equal(handoffDone, false, 'the handoff waits for the running send');
    open();
    await handoff;
    assert.deepEqual(h.sent.filter((s) => s === 'fs1->node-b').length, 2);
    await h.replicator.stop();
  });

  test('disabled: nothing is sent in the background', async () => {
    const h = harness({ enabled: false });
    h.masterNodes.set('fs1', ME, 1);
    h.heads.set('fs1', 'c1');
    h.replicator.start();
    h.events.emit({ op: 'commit', dotId: 'dot1' });
    await settle();
    assert.deepEqual(h.sent, []);
    await h.replicator.stop();
  });
});
