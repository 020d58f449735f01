import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc/client';
import {
  Cleanup,
  type CloudVolumes,
  claimAtData,
  deleteAndWait,
  installCloudVolumes,
  installDotmeshFromDoc,
  podManifest,
  routeCheckRoot,
  runPodToCompletion,
  skipUnless,
  type TestCluster,
  testNamespace,
  useTestCluster,
  waitFor,
} from '@dotmesh/testkit';
import { DIST, DOC, diagnosticsOnFailure, getJson, NS, type PodJson, serverPods } from './k8s-operator-pods.ts';

/**
 * `storageMode: pvcPerNode` on the run's shared test cluster, its pools on the test-only "cloud"
 * volumes (packages/cloud-csi; nodes 0 and 1 in zone-a, node 2 in zone-b): every node gets a pool
 * PVC of its own zone, tied to it by `dotmesh.io/node`, and its server pod keeps the pool file and
 * the server's state (config, etcd data) on it; a dot written by a pod and committed there comes
 * back with every commit and the same bytes when the node's server pod is deleted and made again
 * from the same PVC, and a pod using the dot runs again; a pool PVC that no node can reach (a
 * zone without nodes) is left unadopted with an Event saying so. About 4 minutes with a cluster
 * of its own (about 1.5 on the shared one: install and first serving take most of it). Not here
 * (docs/kubernetes.md, "Surviving node upgrades"): the recycle of a node (the test cluster cannot
 * add a node yet; a pool served at another address is cluster-readdress.test.ts's), replacing
 * every node at once, growing pools online.
 */
const POOL_ROLE = 'dotmesh.io/role=dotmesh-pvc';

interface PvcJson {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { volumeName?: string };
  status?: { phase?: string };
}

describe('storageMode pvcPerNode: each node’s pool on a cloud volume PVC', {
  skip: skipUnless(['root', 'netns', 'losetup', 'k8s']),
  timeout: 20 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let cloud: CloudVolumes;
  let apiKey: string;
  let ns: string;
  let failed = false;
  afterEach((t) => {
    if ('passed' in t && t.passed === false) failed = true;
  });
  after(() => cleanup.run());
  const api = (ip: string) => new DotmeshClient({ url: `http://${ip}:32607/rpc`, user: 'admin', apiKey, timeoutMs: 60_000 });
  const poolClaims = async () =>
    (await getJson<{ items: PvcJson[] }>(cluster.kubectl, ['get', 'pvc', '-n', NS, '-l', POOL_ROLE])).items;
  const ready = (p: PodJson) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

  before(async () => {
    cluster = await useTestCluster(suite);
    cloud = await installCloudVolumes({ cluster, cleanup, zones: ['zone-a', 'zone-a', 'zone-b'], storageClass: 'dmtest-pool' });
    const diagnostics = diagnosticsOnFailure(cluster, () => failed, [
      ['-l', 'dotmesh.io/role=dotmesh-server', '-c', 'dotmesh-server', '--prefix'],
    ]);
    const install = await installDotmeshFromDoc(cluster, cleanup, {
      docFile: DOC,
      dist: DIST,
      onBeforeRemoval: async (i) => {
        if (failed) console.error((await cluster.kubectl(['get', 'pvc,pv,volumeattachments', '-A', '-o', 'wide'])).stdout);
        await diagnostics(i);
      },
      config: { storageMode: 'pvcPerNode', 'pvcPerNode.storageClass': cloud.storageClass, 'pvcPerNode.pvSizePerNode': '1G' },
    });
    apiKey = install.apiKey;
    // Before the manifest goes (LIFO): the operator first (it would make the PVCs again), then the
    // server pods (they let go of their pools), then the pool PVCs and, through the cloud
    // driver, their disks — before the driver itself is stopped.
    cleanup.add(async () => {
      await deleteAndWait(cluster, ['deployment', 'dotmesh-operator', '-n', NS]);
      await deleteAndWait(cluster, ['pod', '-n', NS, '-l', 'dotmesh.io/role=dotmesh-server']);
      await deleteAndWait(cluster, ['pvc', '-n', NS, '-l', POOL_ROLE]);
      await deleteAndWait(cluster, ['pv', 'dmtest-stray-pool']);
      await waitFor(
        async () =>
          !(await cluster.kubectl(['get', 'pv', '-o', 'jsonpath={.items[*].spec.storageClassName}'])).stdout.includes(
            cloud.storageClass,
          ),
        { timeoutMs: 180_000, intervalMs: 1000, what: 'the pool PVs deleted' },
      );
    }, 'delete the pool PVCs and their disks');
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-pvcmode');
  });

  test('every node gets a pool PVC of its zone, tied to it, and its server pod keeps the pool and its state there', async () => {
    const nodes = cluster.nodes.map((n) => n.name);
    await waitFor(
      async () => {
        const pods = [...(await serverPods(cluster.kubectl)).values()];
        return nodes.every((n) => pods.some((p) => p.metadata.labels?.['dotmesh.io/node'] === n && ready(p)));
      },
      { timeoutMs: 600_000, intervalMs: 2000, what: 'a Ready server pod on every node' },
    );
    const claims = await poolClaims();
    assert.deepEqual(claims.map((c) => c.metadata.annotations?.['dotmesh.io/node']).sort(), [...nodes].sort());
    const pods = [...(await serverPods(cluster.kubectl)).values()];
    for (const claim of claims) {
      const node = claim.metadata.annotations!['dotmesh.io/node']!;
      assert.match(claim.metadata.name, /^pvc-[0-9a-f]{16}$/);
      assert.equal(claim.status?.phase, 'Bound');
      const pv = await getJson<{
        spec: { nodeAffinity?: { required?: { nodeSelectorTerms: { matchExpressions?: { values?: string[] }[] }[] } } };
      }>(cluster.kubectl, ['get', 'pv', claim.spec.volumeName!]);
      const zones = pv.spec.nodeAffinity?.required?.nodeSelectorTerms.flatMap((t) =>
        (t.matchExpressions ?? []).flatMap((e) => e.values ?? []),
      );
      assert.deepEqual(zones, [cloud.zones[node]], `the disk of ${node} is in its zone`);
      const pod = pods.find((p) => p.metadata.labels?.['dotmesh.io/node'] === node)!;
      assert.equal(pod.metadata.name, `server-pvc-${claim.metadata.name.slice(-4)}-${node}`);
      const volume = pod.spec.volumes?.find((v) => v.name === 'pool-volume') as { persistentVolumeClaim?: { claimName: string } };
      assert.equal(volume?.persistentVolumeClaim?.claimName, claim.metadata.name);
      const listing = (
        await cluster.kubectl([
          'exec',
          '-n',
          NS,
          pod.metadata.name,
          '-c',
          'dotmesh-server',
          '--',
          'ls',
          '/backend-pv',
          '/backend-pv/server',
        ])
      ).stdout;
      for (const name of ['dotmesh_data', 'dotmesh-pool.lock', 'config.json', 'etcd']) {
        assert.match(listing, new RegExp(`^${name}$`, 'm'), `${name} on the PVC of ${node}: ${listing}`);
      }
    }
  });

  test('a dot written by a pod and committed comes back with every commit when its node’s server pod is made again from the PVC', async () => {
    const node = cluster.nodes[0]!;
    await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, node.ip);
    const dot = `pvcmode-${randomBytes(3).toString('hex')}`;
    await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: dot, namespace: ns },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'dotmesh', resources: { requests: { storage: '1Gi' } } },
      }),
    });
    cleanup.add(() => deleteAndWait(cluster, ['pvc', dot, '-n', ns]), 'delete the dot claim');
    const inPod = async (name: string, script: string) => {
      const out = await runPodToCompletion(
        cluster.kubectl,
        podManifest({
          name,
          namespace: ns,
          node: node.name,
          image: cluster.images.busybox.ref,
          command: ['sh', '-c', script],
          ...claimAtData(dot),
        }),
        240_000,
      );
      await deleteAndWait(cluster, ['pod', name, '-n', ns]);
      return out.trim();
    };
    const sha = 'sha256sum /data/blob | cut -d" " -f1';
    const written = await inPod('writer', `head -c 2097152 /dev/urandom > /data/blob && ${sha}`);
    const s0 = api(node.ip);
    const commit = await s0.call('Commit', {
      Namespace: 'admin',
      Name: dot,
      Branch: '',
      Message: 'on the pool PVC',
      Metadata: {},
    });
    const commits = await s0.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' });
    const old = [...(await serverPods(cluster.kubectl)).values()].find(
      (p) => p.metadata.labels?.['dotmesh.io/node'] === node.name,
    )!;
    await deleteAndWait(cluster, ['pod', old.metadata.name, '-n', NS]);
    await waitFor(
      async () => {
        const back = [...(await serverPods(cluster.kubectl)).values()].find(
          (p) => p.metadata.labels?.['dotmesh.io/node'] === node.name,
        );
        return back !== undefined && back.metadata.uid !== old.metadata.uid && ready(back);
      },
      { timeoutMs: 300_000, intervalMs: 1000, what: `the server pod of ${node.name} made again and Ready` },
    );
    const again = [...(await serverPods(cluster.kubectl)).values()].find(
      (p) => p.metadata.labels?.['dotmesh.io/node'] === node.name,
    )!;
    assert.equal(again.metadata.name, old.metadata.name, 'the same PVC');
    const after = await api(node.ip).call('Commits', { Namespace: 'admin', Name: dot, Branch: '' });
    assert.deepEqual(after, commits, 'every commit is there');
    assert.ok(after.some((c) => c.Id === commit));
    assert.equal(await inPod('reader', sha), written, 'a pod using the dot runs again and reads the same bytes');
  });

  test('a pool PVC that no node can reach (a zone without nodes) is left unadopted, with an Event saying so', async () => {
    // A disk of zone-c, where no node is (a static PV: the driver never touches it; Retain).
    await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name: 'dmtest-stray-pool' },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: cloud.storageClass,
          claimRef: { namespace: NS, name: 'pvc-00000000000strayc' },
          csi: { driver: 'cloud.test.dotmesh.io', volumeHandle: 'zone-c/stray' },
          nodeAffinity: {
            required: {
              nodeSelectorTerms: [
                { matchExpressions: [{ key: 'topology.cloud.test.dotmesh.io/zone', operator: 'In', values: ['zone-c'] }] },
              ],
            },
          },
        },
      }),
    });
    await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'pvc-00000000000strayc', namespace: NS, labels: { 'dotmesh.io/role': 'dotmesh-pvc' } },
        spec: {
          accessModes: ['ReadWriteOnce'],
          storageClassName: cloud.storageClass,
          volumeName: 'dmtest-stray-pool',
          resources: { requests: { storage: '1Gi' } },
        },
      }),
    });
    await waitFor(
      async () =>
        (
          await cluster.kubectl([
            'get',
            'events',
            '-n',
            NS,
            '--field-selector',
            'involvedObject.name=pvc-00000000000strayc,reason=PoolVolumeUnreachable',
            '-o',
            'jsonpath={.items[*].message}',
          ])
        ).stdout.includes('zone-c'),
      { timeoutMs: 120_000, intervalMs: 1000, what: 'a PoolVolumeUnreachable Event naming zone-c' },
    );
    const stray = (await poolClaims()).find((c) => c.metadata.name === 'pvc-00000000000strayc')!;
    assert.equal(stray.metadata.annotations?.['dotmesh.io/node'], undefined, 'no node adopted it');
    assert.equal((await poolClaims()).length, cluster.nodes.length + 1, 'no PVC was made or taken for it');
  });
});
