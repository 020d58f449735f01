import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { parseOperatorConfig } from './config.ts';
import { CSI_NODE_CONTAINER } from './csi-node.ts';
import { serverDisruptionBudget } from './disruption-budget.ts';
import { leaseTakeable } from './leader.ts';
import { deselectedServing, minServingOf, type NodeInfo, planReconcile } from './plan.ts';
import {
  NODE_LABEL,
  PRESTOP_TIMEOUT_SECONDS,
  ROLE_LABEL,
  SPEC_HASH_ANNOTATION,
  serverPod,
  TERMINATION_GRACE_SECONDS,
} from './server-pod.ts';

const context = { namespace: 'dotmesh', image: 'dotmesh.test/server:1' };
/** Every node has its join Secret (the bootstrap is tested on its own below). */
const joinSecrets = { has: () => true } as unknown as ReadonlySet<string>;
const config = (data: Record<string, string> = {}) => parseOperatorConfig(data).config!;
const nodes = (...names: string[]): NodeInfo[] => names.map((name) => ({ name, labels: { 'kubernetes.io/hostname': name } }));

/** The pod the operator would make on `node`, as the API shows it once it serves. */
function running(node: string, o: { image?: string; ready?: boolean; phase?: string } = {}): V1Pod {
  const pod = serverPod(node, { ...context, image: o.image ?? context.image, config: config() }, true);
  return {
    ...pod,
    status: { phase: o.phase ?? 'Running', conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }] },
  };
}

describe('serverPod', () => {
  it('is the original pod: name, labels, privileged, host PID and network, the pool at poolLocation', () => {
    const pod = serverPod('node-1', {
      ...context,
      config: config({ 'local.poolLocation': '/pools/#HOSTNAME#', 'local.poolSizePerNode': '2G' }),
    });
    assert.equal(pod.metadata?.name, 'server-node-1');
    assert.deepEqual(pod.metadata?.labels, { [ROLE_LABEL]: 'dotmesh-server', [NODE_LABEL]: 'node-1' });
    assert.equal(pod.spec?.nodeName, 'node-1');
    assert.equal(pod.spec?.hostNetwork, true);
    assert.equal(pod.spec?.hostPID, true);
    const c = pod.spec!.containers[0]!;
    assert.equal(c.securityContext?.privileged, true);
    assert.ok(c.args?.includes('--pool-dir=/pools/node-1'));
    assert.ok(c.args?.includes(`--pool-size=${2 * 2 ** 30}`));
    assert.deepEqual(pod.spec?.volumes?.find((v) => v.name === 'pool')?.hostPath, {
      path: '/pools/node-1',
      type: 'DirectoryOrCreate',
    });
    // The admin secret is a mounted file, never an environment variable.
    assert.equal(pod.spec?.volumes?.find((v) => v.name === 'admin-secret')?.secret?.secretName, 'dotmesh');
    assert.ok(!JSON.stringify(c.env).includes('secretKeyRef'));
  });
  it('sees the FlexVolume and kubelet directories at the host paths; the server installs the driver there', () => {
    const pod = serverPod('node-1', {
      ...context,
      config: config({ flexvolumeDriverDir: '/k/#HOSTNAME#/exec', kubeletRootDir: '/k/#HOSTNAME#/kubelet' }),
    });
    const c = pod.spec!.containers[0]!;
    assert.deepEqual(
      c.env?.find((e) => e.name === 'DOTMESH_FLEXVOLUME_DIR'),
      { name: 'DOTMESH_FLEXVOLUME_DIR', value: '/k/node-1/exec' },
    );
    const mount = (name: string) => {
      const m = c.volumeMounts?.find((v) => v.name === name);
      return { path: pod.spec?.volumes?.find((v) => v.name === name)?.hostPath?.path, at: m?.mountPath, m };
    };
    assert.deepEqual([mount('flexvolume').path, mount('flexvolume').at], ['/k/node-1/exec', '/k/node-1/exec']);
    const kubelet = mount('kubelet');
    assert.deepEqual([kubelet.path, kubelet.at], ['/k/node-1/kubelet', '/k/node-1/kubelet']);
    assert.equal(kubelet.m?.readOnly, true);
    assert.equal(kubelet.m?.mountPropagation, 'HostToContainer');
    assert.equal(mount('pool').m?.mountPropagation, 'Bidirectional');
  });
  it("runs the CSI node plugin beside the server: the node's kubelet directory, its server, the Secret's key file", () => {
    const pod = serverPod('node-1', {
      ...context,
      config: config({ kubeletRootDir: '/k/#HOSTNAME#/kubelet', 'local.poolLocation': '/pools/#HOSTNAME#' }),
    });
    const csi = pod.spec!.containers.find((c) => c.name === CSI_NODE_CONTAINER)!;
    assert.equal(csi.image, pod.spec!.containers[0]!.image);
    assert.deepEqual(csi.command, ['dotmesh-csi']);
    for (const arg of [
      '--endpoint=unix:///k/node-1/kubelet/plugins/csi.dotmesh.io/csi.sock',
      '--registration-dir=/k/node-1/kubelet/plugins_registry',
      '--server-url=http://$(DOTMESH_NODE_IP):32607/rpc',
      '--api-key-file=/secret/dotmesh-api-key.txt',
    ])
      assert.ok(csi.args?.includes(arg), arg);
    const mounts = Object.fromEntries((csi.volumeMounts ?? []).map((m) => [m.name, [m.mountPath, m.mountPropagation ?? '']]));
    assert.deepEqual(mounts, {
      kubelet: ['/k/node-1/kubelet', 'Bidirectional'],
      pool: ['/pools/node-1', 'HostToContainer'],
      'admin-secret': ['/secret', ''],
    });
    assert.equal(csi.securityContext?.privileged, true);
    assert.ok(!JSON.stringify(csi.env).includes('secretKeyRef'));
    // it stops with the server on a drain: the kubelet unmounts CSI volumes through it
    assert.deepEqual(csi.lifecycle, pod.spec!.containers[0]!.lifecycle);
    assert.ok(csi.env?.some((e) => e.name === 'POD_NAME'));
  });
  it('outlives the pods using its dots: a bounded preStop wait within the grace period, its Node as controller', () => {
    const pod = serverPod('node-1', { ...context, config: config() }, false, 'uid-1');
    const c = pod.spec!.containers[0]!;
    assert.deepEqual(c.lifecycle?.preStop?.exec?.command, [
      'dotmesh-server',
      'pre-stop',
      '--admin-api-key-file=/secret/dotmesh-api-key.txt',
      `--timeout-seconds=${PRESTOP_TIMEOUT_SECONDS}`,
    ]);
    assert.equal(pod.spec?.terminationGracePeriodSeconds, TERMINATION_GRACE_SECONDS);
    // The server stops cleanly after the wait (its etcd member takes up to 10 s).
    assert.ok(TERMINATION_GRACE_SECONDS - PRESTOP_TIMEOUT_SECONDS >= 15);
    assert.equal(pod.spec?.automountServiceAccountToken, true);
    assert.deepEqual(
      c.env?.filter((e) => e.name.startsWith('POD_')).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
      [
        ['POD_NAME', 'metadata.name'],
        ['POD_NAMESPACE', 'metadata.namespace'],
      ],
    );
    assert.deepEqual(pod.metadata?.ownerReferences, [
      { apiVersion: 'v1', kind: 'Node', name: 'node-1', uid: 'uid-1', controller: true },
    ]);
    assert.equal(serverPod('node-1', { ...context, config: config() }).metadata?.ownerReferences, undefined);
  });
  it('changes its hash with the image and the config, not otherwise', () => {
    const hash = (image: string, data: Record<string, string> = {}) =>
      serverPod('n', { ...context, image, config: config(data) }).metadata!.annotations![SPEC_HASH_ANNOTATION];
    assert.equal(hash('a'), hash('a'));
    assert.notEqual(hash('a'), hash('b'));
    assert.notEqual(hash('a'), hash('a', { 'local.poolSizePerNode': '20G' }));
    assert.equal(hash('a'), hash('a', { upgradesUrl: 'https://x.invalid/' }));
  });
});

describe('the server pods’ disruption budget', () => {
  it('keeps floor(0.75 × N) Ready, as the upgrade rule; the plan says N', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 8].map(minServingOf), [0, 0, 1, 2, 3, 3, 6]);
    const pdb = serverDisruptionBudget('dotmesh', 2);
    assert.deepEqual(pdb.spec, { minAvailable: 2, selector: { matchLabels: { [ROLE_LABEL]: 'dotmesh-server' } } });
    const plan = planReconcile({ config: config(), nodes: nodes('a', 'b', 'c', 'd'), pods: [], joinSecrets, context });
    assert.equal(plan.minServing, 3);
  });
  it('in pvcPerNode mode, N counts only the nodes holding a pool: a surge replacement waiting for one does not keep the old node from draining', () => {
    const pvc = config({ storageMode: 'pvcPerNode', 'pvcPerNode.storageClass': 'cloud', 'pvcPerNode.pvSizePerNode': '1G' });
    const plan = (claims: Record<string, string>, ...names: string[]) =>
      planReconcile({
        config: pvc,
        nodes: nodes(...names),
        pods: [],
        joinSecrets,
        poolClaims: new Map(Object.entries(claims)),
        context,
      });
    // One node and its replacement: the old node's only pod may be evicted.
    assert.equal(plan({ old: 'pvc-0000000000000001' }, 'old', 'new').minServing, 0);
    assert.equal(plan({ a: 'pvc-1', b: 'pvc-2', c: 'pvc-3', d: 'pvc-4' }, 'a', 'b', 'c', 'd', 'e').minServing, 3);
  });
  it('during an etcd recovery (pvcPerNode): a pod for every node with a pool at once, and join Secrets for those that do not serve', () => {
    const pvc = config({ storageMode: 'pvcPerNode', 'pvcPerNode.storageClass': 'cloud', 'pvcPerNode.pvSizePerNode': '1G' });
    const claims = new Map(Object.entries({ a: 'pvc-000a', b: 'pvc-000b', c: 'pvc-000c' }));
    const none = new Set<string>();
    const podOf = (node: string, ready: boolean): V1Pod => ({
      ...serverPod(node, { ...context, config: pvc, poolClaim: claims.get(node)! }, false),
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
    const step = (pods: V1Pod[], recovering: boolean, secrets: ReadonlySet<string> = none) =>
      planReconcile({
        config: pvc,
        nodes: nodes('a', 'b', 'c'),
        pods,
        joinSecrets: secrets,
        poolClaims: claims,
        recovering,
        context,
      });
    // Not recovering: the bootstrap rule (one pod while none exists; the others wait for Secrets).
    const first = step([], false);
    assert.deepEqual(
      first.create.map((p) => p.metadata?.name),
      ['server-pvc-000a-a'],
    );
    assert.deepEqual(first.tokensNeeded, ['b', 'c']);
    assert.deepEqual(step([podOf('a', false)], false).create, []);
    // Recovering: every node with a pool gets its pod, without a join Secret; each not serving needs one.
    const gathering = step([podOf('a', false)], true);
    assert.deepEqual(
      gathering.create.map((p) => p.metadata?.name),
      ['server-pvc-000b-b', 'server-pvc-000c-c'],
    );
    assert.deepEqual(gathering.tokensNeeded, ['a', 'b', 'c']);
    // The recovered node serves: it needs no Secret; the others' Secrets made, their pods are made again with them.
    const recovered = step([podOf('a', true), podOf('b', false), podOf('c', false)], true);
    assert.deepEqual(recovered.tokensNeeded, ['b', 'c']);
    const joined = step([podOf('a', true), podOf('b', false), podOf('c', false)], true, new Set(['b', 'c']));
    assert.deepEqual(joined.tokensNeeded, []);
    assert.deepEqual(joined.delete.map((d) => d.name).sort(), ['server-pvc-000b-b', 'server-pvc-000c-c']);
    // Every pvcPerNode pod mounts the recovery's ConfigMap (optional) and leaves its report where the kubelet reads it.
    const pod = podOf('a', true);
    const server = pod.spec!.containers[0]!;
    assert.ok(server.args?.includes('--etcd-recovery-dir=/dotmesh-etcd-recovery'));
    assert.equal(server.terminationMessagePath, '/dotmesh-termination-log');
    assert.ok(server.env?.some((e) => e.name === 'DOTMESH_TERMINATION_LOG' && e.value === '/dotmesh-termination-log'));
    assert.deepEqual(pod.spec!.volumes?.find((v) => v.name === 'etcd-recovery')?.configMap, {
      name: 'dotmesh-etcd-recovery',
      optional: true,
    });
    assert.ok(!running('a').spec!.containers[0]!.args?.some((a) => a.startsWith('--etcd-recovery-dir')), 'not in local mode');
  });
  it('makes each node its pod’s controller when the node’s uid is known', () => {
    const plan = planReconcile({
      config: config(),
      nodes: [{ name: 'a', uid: 'u-a', labels: {} }],
      pods: [],
      joinSecrets,
      context,
    });
    assert.equal(plan.create[0]?.metadata?.ownerReferences?.[0]?.uid, 'u-a');
  });
});

describe('planReconcile', () => {
  it('creates a pod for every selected node, and nothing when all are there', () => {
    const first = planReconcile({ config: config(), nodes: nodes('a', 'b', 'c'), pods: [], joinSecrets, context });
    assert.deepEqual(
      first.create.map((p) => p.metadata?.name),
      ['server-a', 'server-b', 'server-c'],
    );
    assert.deepEqual(first.delete, []);
    const again = planReconcile({
      config: config(),
      nodes: nodes('a', 'b', 'c'),
      pods: ['a', 'b', 'c'].map((n) => running(n)),
      joinSecrets,
      context,
    });
    assert.deepEqual([again.create, again.delete, again.waiting], [[], [], []]);
  });
  it('follows the node selector: an unlabelled node loses its pod, a labelled one gets one', () => {
    const labelled: NodeInfo[] = [
      { name: 'a', labels: { pick: 'yes' } },
      { name: 'b', labels: {} },
    ];
    const plan = planReconcile({
      config: config({ nodeSelector: 'pick=yes' }),
      nodes: labelled,
      pods: [running('b')],
      joinSecrets,
      context,
    });
    assert.deepEqual(
      plan.create.map((p) => p.metadata?.name),
      ['server-a'],
    );
    assert.deepEqual(plan.delete, [{ name: 'server-b', reason: 'node b is not selected', deselected: true }]);
    assert.deepEqual(plan.selectedNodes, ['a']);
  });
  it('keeps the pod of a node no longer selected while its dots are in use, and asks only such pods', () => {
    const labelled: NodeInfo[] = [
      { name: 'a', labels: { pick: 'yes' } },
      { name: 'b', labels: {} },
      { name: 'c', labels: {} },
    ];
    const pods = [
      running('a'),
      { ...running('b'), status: { ...running('b').status, hostIP: '10.0.0.2' } },
      running('c', { phase: 'Failed' }),
    ];
    const picked = config({ nodeSelector: 'pick=yes' });
    assert.deepEqual([...deselectedServing({ config: picked, nodes: labelled, pods })], [['b', '10.0.0.2']]);
    const inUse = planReconcile({ config: picked, nodes: labelled, pods, joinSecrets, dotsInUse: new Set(['b', 'c']), context });
    assert.deepEqual(inUse.held, ['server-b']);
    assert.deepEqual(
      inUse.delete,
      [{ name: 'server-c', reason: 'node c is not selected', deselected: true }],
      'an ended pod goes all the same',
    );
    const unused = planReconcile({ config: picked, nodes: labelled, pods, joinSecrets, dotsInUse: new Set(), context });
    assert.deepEqual(unused.held, []);
    assert.deepEqual(unused.delete.map((d) => d.name).sort(), ['server-b', 'server-c']);
    // A node that is gone takes its pod whatever the uses (its pods went with it).
    const gone = planReconcile({
      config: picked,
      nodes: labelled.slice(0, 1),
      pods,
      joinSecrets,
      dotsInUse: new Set(['b']),
      context,
    });
    assert.deepEqual(
      gone.delete.find((d) => d.name === 'server-b'),
      { name: 'server-b', reason: 'node b is gone' },
    );
  });
  it('deletes the pod of a node that left, and an ended pod', () => {
    const plan = planReconcile({
      config: config(),
      nodes: nodes('a'),
      pods: [running('a', { phase: 'Failed' }), running('gone')],
      joinSecrets,
      context,
    });
    assert.deepEqual(plan.delete.map((d) => d.name).sort(), ['server-a', 'server-gone']);
    assert.deepEqual(plan.create, []);
  });
  it('waits for a pod being deleted before recreating it', () => {
    const going = running('a');
    going.metadata!.deletionTimestamp = new Date();
    const plan = planReconcile({ config: config(), nodes: nodes('a'), pods: [going], joinSecrets, context });
    assert.deepEqual([plan.create, plan.delete], [[], []]);
  });
  it('replaces outdated pods keeping floor(0.75 x N) serving', () => {
    const names = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const old = names.map((n) => running(n, { image: 'old' }));
    const plan = planReconcile({ config: config(), nodes: nodes(...names), pods: old, joinSecrets, context });
    // N = 8: 6 must serve, so 2 are replaced now and 6 wait.
    assert.equal(plan.delete.length, 2);
    assert.equal(plan.waiting.length, 6);
    // With one of them already down (not ready), only that one and one more go.
    const oneDown = old.map((p, i) => (i === 7 ? running('h', { image: 'old', ready: false }) : p));
    const next = planReconcile({ config: config(), nodes: nodes(...names), pods: oneDown, joinSecrets, context });
    assert.ok(next.delete.some((d) => d.name === 'server-h'));
    assert.equal(next.delete.length, 2);
    for (const n of [1, 2, 3, 4]) {
      const few = names.slice(0, n);
      const p = planReconcile({
        config: config(),
        nodes: nodes(...few),
        pods: few.map((x) => running(x, { image: 'old' })),
        joinSecrets,
        context,
      });
      assert.equal(p.delete.length, n - Math.floor(0.75 * n), `N=${n}`);
    }
  });
});

describe('cluster bootstrap', () => {
  const args = (p: V1Pod) => p.spec!.containers[0]!.args!;
  it('starts the first node alone, then the others with join Secrets made through it', () => {
    const first = planReconcile({ config: config(), nodes: nodes('a', 'b', 'c'), pods: [], joinSecrets: new Set(), context });
    assert.deepEqual(
      first.create.map((p) => p.metadata?.name),
      ['server-a'],
    );
    assert.ok(!args(first.create[0]!).some((a) => a.startsWith('--join-dir')));
    assert.deepEqual(first.tokensNeeded, ['b', 'c']);
    const seed = { ...first.create[0]!, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } };
    const next = planReconcile({
      config: config(),
      nodes: nodes('a', 'b', 'c'),
      pods: [seed],
      joinSecrets: new Set(['b']),
      context,
    });
    assert.deepEqual(
      next.create.map((p) => p.metadata?.name),
      ['server-b'],
    );
    assert.ok(args(next.create[0]!).includes('--join-dir=/dotmesh-join'));
    assert.equal(next.create[0]!.spec?.volumes?.find((v) => v.name === 'join')?.secret?.secretName, 'dotmesh-join-b');
    assert.deepEqual(next.tokensNeeded, ['c']);
    assert.deepEqual(next.delete, []);
  });
});

describe('leaseTakeable', () => {
  const lease = (holder: string, renewedMsAgo: number) => ({
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new Date(Date.now() - renewedMsAgo) },
  });
  it('is free when unheld, held by us, or not renewed within its duration', () => {
    assert.equal(leaseTakeable(lease('', 0), 'me', Date.now()), true);
    assert.equal(leaseTakeable(lease('me', 0), 'me', Date.now()), true);
    assert.equal(leaseTakeable(lease('other', 1000), 'me', Date.now()), false);
    assert.equal(leaseTakeable(lease('other', 16_000), 'me', Date.now()), true);
  });
});
