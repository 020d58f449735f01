import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type DepartureInput, type MemberInfo, planDepartures, quorumAfterRemoval, urlHost } from './departures.ts';

const member = (name: string, ip: string, learner = false): MemberInfo => ({
  name,
  peerUrls: [`https://${ip}:42380`],
  learner,
});
const members = [member('id0', '10.1.0.10'), member('id1', '10.1.0.11'), member('id2', '10.1.0.12')];
const pod = (node: number, serving = true) => ({
  pod: `server-node-${node}`,
  node: `node-${node}`,
  address: `10.1.0.1${node}`,
  serving,
});
const live = (...nodes: number[]) => nodes.map((n) => ({ id: `id${n}`, addresses: [`10.1.0.1${n}`] }));
const selected = (...nodes: number[]) => new Set(nodes.map((n) => `10.1.0.1${n}`));

function plan(i: Partial<DepartureInput>) {
  return planDepartures({
    selectedAddresses: selected(0, 1, 2),
    pods: [pod(0), pod(1), pod(2)],
    deselectedDeletions: new Set(),
    liveServers: live(0, 1, 2),
    members,
    ...i,
  });
}

describe('nodes that left, and the quorum rule', () => {
  test('every node selected, every pod there (serving or restarting): nothing leaves', () => {
    assert.deepEqual(plan({}), { remove: [], refused: [], waitingForLease: [] });
    // node-2's server restarts: its pod is not serving and its lease may have expired.
    assert.deepEqual(plan({ pods: [pod(0), pod(1), pod(2, false)], liveServers: live(0, 1) }), {
      remove: [],
      refused: [],
      waitingForLease: [],
    });
    // Its pod is being made again (no pod for a moment): the Node is still selected.
    assert.deepEqual(plan({ pods: [pod(0), pod(1)], liveServers: live(0, 1) }).remove, []);
  });

  test('a deselected, drained node is removed while its server is live, its pod held until then', () => {
    const p = plan({ selectedAddresses: selected(0, 1), deselectedDeletions: new Set(['server-node-2']) });
    assert.deepEqual(p.remove, [
      { nodeId: 'id2', address: '10.1.0.12', kubernetesNode: 'node-2', pod: 'server-node-2', live: true },
    ]);
    assert.deepEqual(p.refused, []);
  });

  test('a deselected node whose removal would leave the etcd without a quorum is refused (another member is down)', () => {
    const p = plan({
      selectedAddresses: selected(0, 1),
      pods: [pod(0), pod(1, false), pod(2)],
      deselectedDeletions: new Set(['server-node-2']),
    });
    assert.deepEqual(p.remove, []);
    assert.equal(p.refused.length, 1);
    assert.equal(p.refused[0]!.pod, 'server-node-2');
    assert.match(p.refused[0]!.why, /keep 2 voting member\(s\) of which 1 run\(s\), short of the 2 a quorum needs/);
  });

  test('a Node deleted: its member is removed (branches given: force) once its lease expired', () => {
    const gone = { selectedAddresses: selected(0, 1), pods: [pod(0), pod(1)] };
    const waiting = plan({ ...gone, liveServers: live(0, 1, 2) });
    assert.deepEqual(waiting.remove, []);
    assert.deepEqual(waiting.waitingForLease, [{ nodeId: 'id2', address: '10.1.0.12', live: false }]);
    const p = plan({ ...gone, liveServers: live(0, 1) });
    assert.deepEqual(p.remove, [{ nodeId: 'id2', address: '10.1.0.12', live: false }]);
    // While its pod still exists (being deleted) on an existing Node, nothing is decided.
    assert.deepEqual(plan({ ...gone, pods: [pod(0), pod(1), pod(2, false)], liveServers: live(0, 1) }).remove, []);
    // A pod whose Node was deleted lingers until it is collected: it counts as none (its last
    // status, serving or not, neither), and its member waits for its lease alone.
    for (const serving of [true, false]) {
      const lingering = { ...pod(2, serving), nodeGone: true };
      const removed = plan({ ...gone, pods: [pod(0), pod(1), lingering], liveServers: live(0, 1) });
      assert.deepEqual(removed.remove, [{ nodeId: 'id2', address: '10.1.0.12', live: false }], `serving: ${serving}`);
      const held = plan({ ...gone, pods: [pod(0), pod(1), lingering], liveServers: live(0, 1, 2) });
      assert.deepEqual(held.waitingForLease, [{ nodeId: 'id2', address: '10.1.0.12', live: false }]);
      assert.deepEqual(held.remove, []);
    }
  });

  test('two of three members gone at once: neither removal keeps a quorum, both refused', () => {
    const p = plan({ selectedAddresses: selected(0), pods: [pod(0)], liveServers: live(0) });
    assert.deepEqual(p.remove, []);
    assert.deepEqual(
      p.refused.map((r) => r.nodeId),
      ['id1', 'id2'],
    );
  });

  test('after one departure (two members left), the second of a live, deselected node is allowed: one member stays', () => {
    const two = [member('id0', '10.1.0.10'), member('id1', '10.1.0.11')];
    const p = plan({
      members: two,
      selectedAddresses: selected(0, 2),
      deselectedDeletions: new Set(['server-node-1']),
    });
    assert.deepEqual(
      p.remove.map((d) => d.nodeId),
      ['id1'],
    );
  });

  test('the last voting member is never removed; a learner always may be', () => {
    const one = [member('id0', '10.1.0.10')];
    assert.deepEqual(
      quorumAfterRemoval(one, one[0]!, () => true),
      {
        ok: false,
        why: 'it is the last voting member of the cluster’s etcd',
      },
    );
    const withLearner = [...one, member('id1', '10.1.0.11', true)];
    assert.deepEqual(
      quorumAfterRemoval(withLearner, withLearner[1]!, () => false),
      { ok: true },
    );
  });

  test('a node that runs no member (a fourth node) leaves: its branches move, no member to count', () => {
    const p = plan({
      selectedAddresses: selected(0, 1, 2),
      pods: [pod(0), pod(1), pod(2), pod(3)],
      liveServers: live(0, 1, 2, 3),
      deselectedDeletions: new Set(['server-node-3']),
    });
    assert.deepEqual(p.remove, [
      { nodeId: 'id3', address: '10.1.0.13', kubernetesNode: 'node-3', pod: 'server-node-3', live: true },
    ]);
  });

  test('an etcd Dotmesh does not run: deselected nodes still hand their branches off', () => {
    const p = plan({ members: undefined, selectedAddresses: selected(0, 1), deselectedDeletions: new Set(['server-node-2']) });
    assert.deepEqual(
      p.remove.map((d) => d.nodeId),
      ['id2'],
    );
  });

  test('peer URL hosts, IPv6 included', () => {
    assert.equal(urlHost('https://10.0.0.1:42380'), '10.0.0.1');
    assert.equal(urlHost('https://[fd00::1]:42380'), 'fd00::1');
    assert.equal(urlHost('not a url'), undefined);
  });
});
