import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CLOUD_ZONE_KEY,
  Cleanup,
  type CloudVolumes,
  claimAtData,
  deleteAndWait,
  installCloudVolumes,
  podManifest,
  runPodToCompletion,
  skipUnless,
  type TestCluster,
  testNamespace,
  useTestCluster,
  waitFor,
} from '@dotmesh/testkit';
import { attachedNodes } from './k8s-volumes.ts';

/**
 * The "cloud" volumes of the test cluster (the test-only driver of packages/cloud-csi standing in
 * for EBS or PD), which Cloud Volumes v2 puts dotmesh pools on: proven with real kubelets and the
 * real csi-provisioner and csi-attacher before anything relies on them. Nodes 0 and 1 are in
 * zone-a, node 2 in zone-b. A claim is provisioned in the zone of its first pod's node; a pod on
 * another node of that zone gets the same disk once the first pod is gone (detached, attached
 * again: the data is there); a pod in the other zone cannot use it; deleting the claim deletes the
 * disk.
 */
describe('cloud volumes on the test cluster (test-only CSI driver, csi-provisioner, csi-attacher)', {
  skip: skipUnless(['root', 'netns', 'losetup', 'k8s']),
  timeout: 20 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let ns: string;
  let cloud: CloudVolumes;
  after(() => cleanup.run());

  before(async () => {
    cluster = await useTestCluster(suite);
    cloud = await installCloudVolumes({ cluster, cleanup, zones: ['zone-a', 'zone-a', 'zone-b'], storageClass: 'dmtest-cloud' });
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-cloud');
  });

  const disks = async (zone: string) => (await readdir(join(cloud.root, zone)).catch(() => [])).filter((f) => f.endsWith('.img'));
  const pod = (name: string, node: string, script: string) =>
    podManifest({
      name,
      namespace: ns,
      node,
      scheduled: true,
      image: cluster.images.busybox.ref,
      command: ['sh', '-c', script],
      ...claimAtData('disk'),
    });

  test('a claim is made in its pod’s zone; the disk moves to another node of that zone with its data; deleting the claim deletes the disk', async () => {
    const [a0, a1, b0] = cluster.nodes.map((n) => n.name) as [string, string, string];
    const claim = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'disk', namespace: ns },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: cloud.storageClass,
        resources: { requests: { storage: '64Mi' } },
      },
    };
    await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(claim) });
    const written = await runPodToCompletion(
      cluster.kubectl,
      pod('writer', a0, 'head -c 4194304 /dev/urandom > /data/blob && sha256sum /data/blob | cut -d" " -f1'),
      180_000,
    );
    const pv = (await cluster.kubectl(['get', 'pvc', 'disk', '-n', ns, '-o', 'jsonpath={.spec.volumeName}'])).stdout.trim();
    const affinity = (
      await cluster.kubectl([
        'get',
        'pv',
        pv,
        '-o',
        'jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0]}',
      ])
    ).stdout;
    assert.deepEqual(
      JSON.parse(affinity),
      { key: CLOUD_ZONE_KEY, operator: 'In', values: ['zone-a'] },
      'the PV is tied to zone-a',
    );
    assert.equal((await disks('zone-a')).length, 1, 'one disk in zone-a');
    assert.deepEqual(await attachedNodes(cluster, pv), [a0]);

    await deleteAndWait(cluster, ['pod', 'writer', '-n', ns]);
    const read = await runPodToCompletion(cluster.kubectl, pod('reader', a1, 'sha256sum /data/blob | cut -d" " -f1'), 180_000);
    assert.equal(read.trim(), written.trim(), 'the data written on node 0 is read on node 1');
    assert.deepEqual(await attachedNodes(cluster, pv), [a1], 'detached from node 0, attached to node 1');
    await deleteAndWait(cluster, ['pod', 'reader', '-n', ns]);

    // zone-b cannot have it: the scheduler leaves the pod Pending, the PV's node affinity unmatched
    await cluster.kubectl(['apply', '-f', '-'], { input: pod('elsewhere', b0, 'cat /data/blob') });
    await waitFor(
      async () => {
        const jsonpath = 'jsonpath={.status.conditions[?(@.type=="PodScheduled")].message}';
        const why = (await cluster.kubectl(['get', 'pod', 'elsewhere', '-n', ns, '-o', jsonpath])).stdout;
        if (!/didn't match PersistentVolume's node affinity/.test(why)) throw new Error(`the scheduler says: ${why}`);
        return true;
      },
      { timeoutMs: 60_000, what: 'the scheduler refusing zone-b for the zone-a disk' },
    );
    assert.equal(
      (await cluster.kubectl(['get', 'pod', 'elsewhere', '-n', ns, '-o', 'jsonpath={.status.phase}'])).stdout,
      'Pending',
    );
    await deleteAndWait(cluster, ['pod', 'elsewhere', '-n', ns]);

    await deleteAndWait(cluster, ['pvc', 'disk', '-n', ns]);
    await waitFor(async () => (await disks('zone-a')).length === 0 && (await readdir(join(cloud.root, 'records'))).length === 0, {
      timeoutMs: 120_000,
      what: 'the disk deleted with its claim',
    });
  });
});
