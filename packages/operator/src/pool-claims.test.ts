import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1NodeSelector } from '@kubernetes/client-node';
import { parseOperatorConfig } from './config.ts';
import { type NodeInfo, planReconcile } from './plan.ts';
import { affinityAllows, type PoolClaim, type PoolNode, planPoolClaims } from './pool-claims.ts';
import { NODE_LABEL, POOL_VOLUME_MOUNT, serverPod } from './server-pod.ts';

const ZONE = 'topology.cloud.test.dotmesh.io/zone';
const NOW = Date.parse('2026-06-01T12:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const node = (name: string, zone: string, selected = true): PoolNode => ({ name, labels: { [ZONE]: zone }, selected });
const inZone = (zone: string): V1NodeSelector => ({
  nodeSelectorTerms: [{ matchExpressions: [{ key: ZONE, operator: 'In', values: [zone] }] }],
});
const pvc = (name: string, heldBy: string, zone?: string, created = '2026-01-01T00:00:00Z'): PoolClaim => ({
  name,
  heldBy,
  created,
  ...(zone ? { nodeAffinity: inZone(zone) } : {}),
});

describe('planPoolClaims: which pool PVC a node gets', () => {
  it('makes one PVC for each selected node that has none, and none for a node not selected', () => {
    const plan = planPoolClaims({ nodes: [node('a', 'z1'), node('b', 'z2'), node('c', 'z1', false)], pvcs: [], now: NOW });
    assert.deepEqual(plan.create, ['a', 'b']);
    assert.deepEqual(plan.adopt, []);
    assert.deepEqual([...plan.assigned], []);
  });

  it('keeps a PVC with its node while the Node exists, selected or not (a drained node keeps its pool)', () => {
    const plan = planPoolClaims({
      nodes: [node('a', 'z1'), node('b', 'z1', false)],
      pvcs: [pvc('pvc-a', 'a', 'z1'), pvc('pvc-b', 'b', 'z1')],
      now: NOW,
    });
    assert.deepEqual([...plan.assigned].sort(), [
      ['a', 'pvc-a'],
      ['b', 'pvc-b'],
    ]);
    assert.deepEqual([plan.release, plan.adopt, plan.create, plan.unreachable], [[], [], [], []]);
  });

  it('releases the PVC of a deleted Node and gives it to the replacement node of the same zone before making any', () => {
    // Surge order: node-new joined zone z1, node-old (z1) was drained and deleted.
    const plan = planPoolClaims({
      nodes: [node('node-b', 'z2'), { ...node('node-new', 'z1'), created: ago(5_000) }],
      pvcs: [pvc('pvc-old', 'node-old', 'z1'), pvc('pvc-b', 'node-b', 'z2')],
      now: NOW,
    });
    assert.deepEqual(plan.release, ['pvc-old']);
    assert.deepEqual(plan.adopt, [{ pvc: 'pvc-old', node: 'node-new' }]);
    assert.deepEqual(plan.create, []);
    assert.equal(plan.assigned.get('node-new'), 'pvc-old');
  });

  it('adopts only a PVC of its own zone: a node of another zone gets a new PVC, the unheld one waits with a report', () => {
    const plan = planPoolClaims({ nodes: [node('n2', 'z2')], pvcs: [pvc('pvc-z1', '', 'z1')], now: NOW });
    assert.deepEqual(plan.adopt, []);
    assert.deepEqual(plan.create, ['n2']);
    assert.deepEqual(plan.unreachable, [{ pvc: 'pvc-z1', where: `${ZONE} in (z1)` }]);
  });

  it('adopts the oldest unheld PVC of the zone first, one per node; a spare reachable PVC is not reported', () => {
    const plan = planPoolClaims({
      nodes: [node('n1', 'z1')],
      pvcs: [pvc('pvc-young', '', 'z1', '2026-03-01T00:00:00Z'), pvc('pvc-old', '', 'z1', '2026-02-01T00:00:00Z')],
      now: NOW,
    });
    assert.deepEqual(plan.adopt, [{ pvc: 'pvc-old', node: 'n1' }]);
    assert.deepEqual(plan.unreachable, []);
  });

  it('a PVC with no PV yet fits any node; a PVC being deleted is never adopted', () => {
    const plan = planPoolClaims({
      nodes: [node('n1', 'z1'), node('n2', 'z2')],
      pvcs: [{ ...pvc('pvc-gone', '', 'z1'), deleting: true }, pvc('pvc-unbound', 'departed')],
      now: NOW,
    });
    assert.deepEqual(plan.release, ['pvc-unbound']);
    assert.deepEqual(plan.adopt, [{ pvc: 'pvc-unbound', node: 'n1' }]);
    assert.deepEqual(plan.create, ['n2']);
  });

  it('a node not selected adopts nothing; a zone with no selected node leaves its PVC unadopted', () => {
    const plan = planPoolClaims({ nodes: [node('n1', 'z1', false)], pvcs: [pvc('pvc-z1', 'gone', 'z1')], now: NOW });
    assert.deepEqual(plan.release, ['pvc-z1']);
    assert.deepEqual(plan.adopt, []);
    assert.deepEqual(
      plan.unreachable.map((u) => u.pvc),
      ['pvc-z1'],
    );
  });

  it('surge order, step by step: the new node waits while it is new or a cordoned node of its zone holds a pool, then adopts it', () => {
    const old = node('old', 'z1');
    const fresh = { ...node('new', 'z1'), created: ago(10_000) };
    const pools = [pvc('pvc-old', 'old', 'z1'), pvc('pvc-b', 'b', 'z2')];
    const nodes = [node('b', 'z2')];
    // 1. The new node joins: new, and the cluster has pools: it waits.
    let plan = planPoolClaims({ nodes: [...nodes, old, fresh], pvcs: pools, now: NOW });
    assert.deepEqual(plan.create, []);
    assert.deepEqual(
      plan.waiting.map((w) => w.node),
      ['new'],
    );
    assert.deepEqual(plan.replaced, [], 'an old node not cordoned is not being replaced');
    // 2. The old node is drained (cordoned): the new one waits, however old it is by then, and
    // the old one is being replaced (its server pod, once evicted, is not made again).
    plan = planPoolClaims({ nodes: [...nodes, { ...old, unschedulable: true }, fresh], pvcs: pools, now: NOW + 600_000 });
    assert.deepEqual(plan.create, []);
    assert.match(plan.waiting[0]!.reason, /cordoned node old holds pool PVC pvc-old/);
    assert.deepEqual(plan.replaced, ['old']);
    // A cordoned node that no new node waits for (maintenance) is not being replaced.
    assert.deepEqual(planPoolClaims({ nodes: [...nodes, { ...old, unschedulable: true }], pvcs: pools, now: NOW }).replaced, []);
    // 3. The old Node is deleted: released and adopted by the new one.
    plan = planPoolClaims({ nodes: [...nodes, fresh], pvcs: pools, now: NOW + 600_000 });
    assert.deepEqual(plan.adopt, [{ pvc: 'pvc-old', node: 'new' }]);
    assert.deepEqual([plan.create, plan.waiting], [[], []]);
  });

  it('every node of a zone replaced at once: each new node counts on a cordoned node of its own, and all of them are being replaced', () => {
    const olds = [
      { ...node('old-1', 'z1'), unschedulable: true },
      { ...node('old-2', 'z1'), unschedulable: true },
      { ...node('old-3', 'z2'), unschedulable: true },
    ];
    const fresh = ['new-1', 'new-2', 'new-3'].map((n, i) => ({ ...node(n, i < 2 ? 'z1' : 'z2'), created: ago(10_000) }));
    const pools = [pvc('pvc-1', 'old-1', 'z1'), pvc('pvc-2', 'old-2', 'z1', '2026-01-02T00:00:00Z'), pvc('pvc-3', 'old-3', 'z2')];
    const plan = planPoolClaims({ nodes: [...olds, ...fresh], pvcs: pools, now: NOW + 600_000 });
    assert.deepEqual(plan.create, []);
    assert.deepEqual(plan.replaced, ['old-1', 'old-2', 'old-3']);
    assert.deepEqual(
      plan.waiting.map((w) => w.reason),
      [
        'cordoned node old-1 holds pool PVC pvc-1 of its zone',
        'cordoned node old-2 holds pool PVC pvc-2 of its zone',
        'cordoned node old-3 holds pool PVC pvc-3 of its zone',
      ],
    );
    // A third new node in z1 (more replacements than nodes replaced) waits on one already counted on.
    const extra = { ...node('new-4', 'z1'), created: ago(10_000) };
    assert.equal(planPoolClaims({ nodes: [...olds, ...fresh, extra], pvcs: pools, now: NOW }).waiting.length, 4);
  });
  it('a new node gets a new PVC once its grace is over with nothing released; a first install makes PVCs at once', () => {
    const fresh = { ...node('new', 'z1'), created: ago(10_000) };
    const plan = planPoolClaims({ nodes: [node('a', 'z1'), fresh], pvcs: [pvc('pvc-a', 'a', 'z1')], now: NOW + 200_000 });
    assert.deepEqual(plan.create, ['new']);
    const first = planPoolClaims({ nodes: [fresh, { ...node('n2', 'z2'), created: ago(1000) }], pvcs: [], now: NOW });
    assert.deepEqual(first.create, ['n2', 'new']);
    // A cordoned node of another zone holds nobody back.
    const other = planPoolClaims({
      nodes: [{ ...node('b', 'z2'), unschedulable: true }, node('c', 'z1')],
      pvcs: [pvc('pvc-b', 'b', 'z2')],
      now: NOW,
    });
    assert.deepEqual(other.create, ['c']);
  });

  it('reads node affinity as the scheduler does: any term, every expression; field terms never match', () => {
    const labels = { [ZONE]: 'z1', disk: 'ssd' };
    const terms = (...t: V1NodeSelector['nodeSelectorTerms']) => ({ nodeSelectorTerms: t });
    assert.equal(affinityAllows(undefined, labels), true);
    assert.equal(affinityAllows(inZone('z2'), labels), false);
    assert.equal(
      affinityAllows(
        terms(
          { matchExpressions: [{ key: ZONE, operator: 'In', values: ['z2'] }] },
          {
            matchExpressions: [
              { key: 'disk', operator: 'Exists' },
              { key: 'gpu', operator: 'DoesNotExist' },
              { key: ZONE, operator: 'NotIn', values: ['z3'] },
            ],
          },
        ),
        labels,
      ),
      true,
    );
    assert.equal(
      affinityAllows(terms({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['x'] }] }), labels),
      false,
    );
  });
});

describe('the server pod in pvcPerNode mode', () => {
  const config = parseOperatorConfig({ storageMode: 'pvcPerNode', 'pvcPerNode.pvSizePerNode': '4G' }).config!;
  const context = { namespace: 'dotmesh', image: 'dotmesh.test/server:1' };
  const nodes: NodeInfo[] = [
    { name: 'n1', labels: {} },
    { name: 'n2', labels: {} },
  ];
  const joinSecrets = new Set(['n1', 'n2']);

  it("mounts its node's PVC for the pool file and the server's state; the scheduler pins it to the node", () => {
    const pod = serverPod('n1', { ...context, config, poolClaim: 'pvc-0123456789abcdef' });
    assert.equal(pod.metadata?.name, 'server-pvc-cdef-n1');
    assert.equal(pod.metadata?.labels?.[NODE_LABEL], 'n1');
    assert.equal(pod.spec?.nodeName, undefined);
    assert.deepEqual(pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms, [
      { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] },
    ]);
    assert.equal(
      pod.spec?.volumes?.find((v) => v.name === 'pool-volume')?.persistentVolumeClaim?.claimName,
      'pvc-0123456789abcdef',
    );
    const c = pod.spec!.containers[0]!;
    assert.deepEqual(c.volumeMounts?.find((m) => m.name === 'pool-volume')?.mountPath, POOL_VOLUME_MOUNT);
    assert.ok(c.args?.includes(`--pool-volume-dir=${POOL_VOLUME_MOUNT}`));
    assert.ok(!c.args?.some((a) => a.startsWith('--pool-size=')), 'the pool follows its volume: no size in the pod');
  });

  it('the same pod whatever pvSizePerNode says: raising it grows the pools without replacing a pod', () => {
    const bigger = { ...config, pvcPerNode: { ...config.pvcPerNode, pvSizePerNodeBytes: 8 * 2 ** 30 } };
    const a = serverPod('n1', { ...context, config, poolClaim: 'pvc-0123456789abcdef' });
    const b = serverPod('n1', { ...context, config: bigger, poolClaim: 'pvc-0123456789abcdef' });
    assert.deepEqual(b, a);
  });

  it('passes pvcPerNode.etcdMoveWaitSeconds to the server only when it is not the default (the pods stay as they were)', () => {
    const pod = (seconds: number) =>
      serverPod('n1', {
        ...context,
        config: { ...config, pvcPerNode: { ...config.pvcPerNode, etcdMoveWaitSeconds: seconds } },
        poolClaim: 'pvc-0123456789abcdef',
      });
    assert.deepEqual(pod(120), serverPod('n1', { ...context, config, poolClaim: 'pvc-0123456789abcdef' }));
    assert.ok(!pod(120).spec!.containers[0]!.args?.some((a) => a.startsWith('--etcd-move-wait-seconds')));
    assert.ok(pod(15).spec!.containers[0]!.args?.includes('--etcd-move-wait-seconds=15'));
  });

  it('makes a pod only for a node whose PVC is known; the pod is the one of that PVC', () => {
    const plan = planReconcile({
      config,
      nodes,
      pods: [],
      joinSecrets,
      poolClaims: new Map([['n2', 'pvc-00000000000000b2']]),
      context,
    });
    assert.deepEqual(
      plan.create.map((p) => p.metadata?.name),
      ['server-pvc-00b2-n2'],
    );
  });

  it('makes no pod again on a cordoned node being replaced, and leaves the pod it still has', () => {
    const poolClaims = new Map([
      ['n1', 'pvc-000000000000aaaa'],
      ['n2', 'pvc-000000000000bbbb'],
    ]);
    const replacedNodes = new Set(['n1']);
    const gone = planReconcile({ config, nodes, pods: [], joinSecrets, poolClaims, replacedNodes, context });
    assert.deepEqual(
      gone.create.map((p) => p.metadata?.name),
      ['server-pvc-bbbb-n2'],
    );
    const pod = serverPod('n1', { ...context, config, poolClaim: 'pvc-000000000000aaaa' }, true);
    const running = { ...pod, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } };
    const kept = planReconcile({ config, nodes, pods: [running], joinSecrets, poolClaims, replacedNodes, context });
    assert.deepEqual(kept.delete, []);
  });

  it('replaces the pod of a node that adopted another PVC', () => {
    const old = serverPod('n1', { ...context, config, poolClaim: 'pvc-000000000000aaaa' }, true);
    const running = { ...old, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } };
    const plan = planReconcile({
      config,
      nodes,
      pods: [running],
      joinSecrets,
      poolClaims: new Map([
        ['n1', 'pvc-000000000000bbbb'],
        ['n2', 'pvc-000000000000cccc'],
      ]),
      context,
    });
    assert.deepEqual(
      plan.delete.map((d) => d.name),
      ['server-pvc-aaaa-n1'],
    );
    assert.deepEqual(
      plan.create.map((p) => p.metadata?.name),
      ['server-pvc-bbbb-n1', 'server-pvc-cccc-n2'],
    );
  });
});
