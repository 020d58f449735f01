import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc/client';
import {
  addClusterNode,
  Cleanup,
  type CloudVolumes,
  type DocInstall,
  deleteAndWait,
  deletePoolVolumes,
  installCloudVolumes,
  installDotmeshFromDoc,
  removeClusterNode,
  routeCheckRoot,
  skipUnless,
  type TestCluster,
  type TestClusterNode,
  testNamespace,
  useTestCluster,
  waitFor,
} from '@dotmesh/testkit';
import { DIST, DOC, diagnosticsOnFailure, NS, type PodJson, serverPods } from './k8s-operator-pods.ts';
import { dotClaim, eventMessages, scriptWithClaim } from './k8s-volumes.ts';

/**
 * `storageMode: pvcPerNode`, every node replaced at once (docs/kubernetes.md, "Replacing every
 * node at once"), on real kubelets with the test-only cloud volumes: three nodes of this suite's
 * own (two in zone-a, one in zone-b; selected by a label, so the shared nodes 0–2 are not
 * touched), each with a dot a pod wrote and committed; three replacements added in the same
 * zones, the three old nodes drained together, their Nodes deleted and machines removed. Every
 * etcd member's address is then gone: the servers report their members stranded, the operator
 * records one recovery (the ConfigMap dotmesh-etcd-recovery, an `EtcdRecovery` Event), one pool's
 * member restarts the cluster and the two others join it again. Checked: every pool adopted by
 * the replacement of its zone and served as the same Dotmesh node; every dot's commits; the
 * bytes a pod reads (hash); etcd with three voting members at the new addresses; a new commit
 * works; the recovery's record gone once every server serves.
 */
const SHA = 'sha256sum /data/blob | cut -d" " -f1';
const SELECT = 'dmtest.dotmesh.io/replace-all';

describe('storageMode pvcPerNode: every node replaced at once', {
  skip: skipUnless(['root', 'netns', 'losetup', 'k8s']),
  timeout: 40 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let cloud: CloudVolumes;
  let install: DocInstall | undefined;
  let olds: TestClusterNode[] = [];
  const zones = ['zone-a', 'zone-a', 'zone-b'] as const;
  const added = new Cleanup();
  let apiKey: string;
  let ns: string;
  let failed = false;
  afterEach((t) => {
    if ('passed' in t && t.passed === false) failed = true;
  });
  after(() => cleanup.run());
  const api = (ip: string) => new DotmeshClient({ url: `http://${ip}:32607/rpc`, user: 'admin', apiKey, timeoutMs: 60_000 });
  const ready = (p: PodJson) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  const serverPodOf = async (node: string) =>
    [...(await serverPods(cluster.kubectl)).values()].find((p) => p.metadata.labels?.['dotmesh.io/node'] === node);
  const inPod = (node: TestClusterNode, dot: string, name: string, script: string) =>
    scriptWithClaim(cluster, { namespace: ns, node, pod: name, claim: dot, script, timeoutMs: 300_000 });
  /** A node in each of `zones`, added together, labelled for the nodeSelector. */
  const addNodes = () =>
    Promise.all(
      zones.map(async (zone) => {
        const n = await addClusterNode(cluster, {
          cleanup: added,
          labels: { [SELECT]: 'yes' },
          ...(install ? { images: install.images } : {}),
        });
        await cloud.addNode(n, zone);
        return n;
      }),
    );

  before(async () => {
    cluster = await useTestCluster(suite);
    cloud = await installCloudVolumes({ cluster, cleanup, zones: ['zone-a', 'zone-a', 'zone-b'], storageClass: 'dmtest-pool' });
    cleanup.add(() => added.run(), 'remove the nodes the suite added');
    olds = await addNodes();
    const diagnostics = diagnosticsOnFailure(cluster, () => failed, [
      ['-l', 'dotmesh.io/role=dotmesh-server', '-c', 'dotmesh-server', '--prefix'],
    ]);
    install = await installDotmeshFromDoc({ ...cluster, nodes: [...cluster.nodes, ...olds] }, cleanup, {
      docFile: DOC,
      dist: DIST,
      onBeforeRemoval: async (i) => {
        if (failed) {
          console.error((await cluster.kubectl(['get', 'pvc,pv,configmap', '-n', NS, '-o', 'wide'])).stdout);
          console.error((await cluster.kubectl(['get', 'events', '-n', NS])).stdout);
        }
        await diagnostics(i);
      },
      config: {
        nodeSelector: `${SELECT}=yes`,
        storageMode: 'pvcPerNode',
        'pvcPerNode.storageClass': cloud.storageClass,
        'pvcPerNode.pvSizePerNode': '1G',
        // A deviation from the default (120 s): the wait of the CA holder's member for its old
        // peers, after which it reports itself stranded (most of the time to the recovery).
        // Safe here: the drains stop every old server pod, and so every etcd member, before any
        // replacement's pod starts, so no member can ever answer and the wait cannot end
        // otherwise; and the operator decides a recovery only once every voting member reported
        // and no server serves.
        'pvcPerNode.etcdMoveWaitSeconds': '15',
      },
    });
    apiKey = install.apiKey;
    cleanup.add(() => deletePoolVolumes(cluster, cloud.storageClass), 'delete the pool PVCs and their disks');
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-replall');
  });

  test('every dot, commit and etcd member comes back when the three nodes are replaced together', async (t) => {
    await waitFor(
      async () => {
        const pods = [...(await serverPods(cluster.kubectl)).values()];
        return olds.every((n) => pods.some((p) => p.metadata.labels?.['dotmesh.io/node'] === n.name && ready(p)));
      },
      { timeoutMs: 900_000, intervalMs: 2000, what: 'a Ready server pod on every node of the suite' },
    );
    // The three replacements are made while the dots are written: a new node waits for a pool
    // while it is under 2 minutes old, and once the old nodes are cordoned (right after the
    // writes) for theirs.
    const adding = addNodes();
    adding.catch(() => undefined); // awaited below; a failed write leaves it to the cleanup
    // A dot on each node, written by a pod there and committed (the three at once).
    const dots = await Promise.all(
      olds.map(async (node, i) => {
        await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, node.ip);
        const dot = `replall-${randomBytes(3).toString('hex')}`;
        await dotClaim(cluster, ns, dot);
        cleanup.add(() => deleteAndWait(cluster, ['pvc', dot, '-n', ns]), 'delete the dot claim');
        const written = await inPod(node, dot, `writer-${i}`, `head -c 1048576 /dev/urandom > /data/blob && ${SHA}`);
        const server = api(node.ip);
        await server.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: `on ${node.name}`, Metadata: {} });
        const commits = await server.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' });
        const { NodeId: nodeId } = await server.call('PoolInfo', {});
        return { dot, nodeId, zone: zones[i]!, written, commits };
      }),
    );

    // The three old nodes cordoned (their replacements, in the same zones, then wait for their
    // pools); the old nodes drained together (deleting their pods: the disruption budget would
    // keep two serving), the one whose pool holds the CA key last; their Nodes deleted and
    // machines removed.
    let t0 = Date.now();
    for (const old of olds) await cluster.kubectl(['cordon', old.name]);
    const holdsCaKey = await Promise.all(
      olds.map(async (n) => ((await api(n.ip).call('ClusterCa', {})) as { HoldsCaKey?: boolean }).HoldsCaKey === true),
    );
    assert.equal(holdsCaKey.filter(Boolean).length, 1, 'one pool holds the CA key');
    const fresh = await adding;
    const drain = (old: TestClusterNode) =>
      cluster.kubectl(
        ['drain', old.name, '--ignore-daemonsets', '--delete-emptydir-data', '--force', '--disable-eviction', '--timeout=300s'],
        { timeoutMs: 320_000 },
      );
    await Promise.all(olds.filter((_, i) => !holdsCaKey[i]).map(drain));
    await drain(olds[holdsCaKey.indexOf(true)]!);
    const oldNames = new Set(olds.map((n) => n.name));
    await waitFor(
      async () =>
        !(
          await cluster.kubectl(['get', 'volumeattachments', '-o', 'jsonpath={range .items[*]}{.spec.nodeName}{"\\n"}{end}'])
        ).stdout
          .split('\n')
          .some((n) => oldNames.has(n)),
      { timeoutMs: 240_000, intervalMs: 1000, what: 'the old nodes’ disks detached' },
    );
    for (const old of olds) {
      await cluster.kubectl(['delete', 'node', old.name]);
      await removeClusterNode(cluster, old.name);
    }
    t.diagnostic(`the old nodes cordoned, drained and deleted (three replacements added meanwhile) in ${Date.now() - t0} ms`);

    // The recovery: decided once, then every server serves.
    t0 = Date.now();
    for (const n of fresh) await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, n.ip);
    await waitFor(
      async () => (await eventMessages(cluster, NS, 'reason=EtcdRecovery')).includes('restarts the cluster from its data'),
      { timeoutMs: 900_000, intervalMs: 2000, what: 'an EtcdRecovery Event' },
    );
    t.diagnostic(`recovery decided ${Date.now() - t0} ms after the old Nodes were deleted`);
    await waitFor(
      async () => {
        const pods = await Promise.all(fresh.map((n) => serverPodOf(n.name)));
        return pods.every((p) => p !== undefined && ready(p));
      },
      { timeoutMs: 900_000, intervalMs: 2000, what: 'a Ready server pod on every replacement' },
    );
    t.diagnostic(`every server Ready ${Date.now() - t0} ms after the old Nodes were deleted`);

    // Every pool served by the replacement of its zone, as the same node, with every commit and the same bytes.
    const byNodeId = new Map<string, TestClusterNode>();
    for (const n of fresh) byNodeId.set((await api(n.ip).call('PoolInfo', {})).NodeId, n);
    assert.deepEqual([...byNodeId.keys()].sort(), dots.map((d) => d.nodeId).sort(), 'the three pools, each on one replacement');
    for (const [i, d] of dots.entries()) {
      const node = byNodeId.get(d.nodeId)!;
      assert.equal(cloud.zones[node.name], d.zone, `the pool of ${d.dot} in its zone`);
      assert.deepEqual(await api(node.ip).call('Commits', { Namespace: 'admin', Name: d.dot, Branch: '' }), d.commits);
      assert.equal(await inPod(node, d.dot, `reader-${i}`, SHA), d.written, `a pod reads the bytes of ${d.dot}`);
    }
    // etcd: three voting members, at the replacements' addresses.
    const { Members } = await api(fresh[0]!.ip).call('EtcdMembers', {});
    assert.deepEqual(
      Members.map((m) => [m.Learner, new URL(m.PeerUrls[0]!).hostname]).sort(),
      fresh.map((n) => [false, n.ip]).sort(),
    );
    // Writes work: a commit of each dot.
    for (const d of dots) {
      const node = byNodeId.get(d.nodeId)!;
      await api(node.ip).call('Commit', { Namespace: 'admin', Name: d.dot, Branch: '', Message: 'after', Metadata: {} });
      const commits = await api(fresh[0]!.ip).call('Commits', { Namespace: 'admin', Name: d.dot, Branch: '' });
      assert.equal(commits.length, (d.commits as unknown[]).length + 1);
    }
    await waitFor(
      async () =>
        (await cluster.kubectl(['get', 'configmap', '-n', NS, '-o', 'name'])).stdout.includes('dotmesh-etcd-recovery') === false,
      { timeoutMs: 120_000, intervalMs: 2000, what: 'the recovery’s record deleted' },
    );
  });
});
