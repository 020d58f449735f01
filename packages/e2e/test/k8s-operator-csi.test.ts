import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc/client';
import {
  Cleanup,
  claimAtData,
  type DocInstall,
  deleteAndWait,
  installDotmeshCsiFromDoc,
  installDotmeshFromDoc,
  podManifest,
  routeCheckRoot,
  runPodToCompletion,
  skipUnless,
  type TestCluster,
  testNamespace,
  useTestCluster,
  waitFor,
  waitForDotmesh,
  waitForDotmeshCsi,
} from '@dotmesh/testkit';
import { DIST, DOC, diagnosticsOnFailure } from './k8s-operator-pods.ts';
import { attachedNodes } from './k8s-volumes.ts';

/**
 * The CSI driver csi.dotmesh.io as docs/kubernetes.md deploys it with the operator, on the run's
 * shared test cluster: the node plugin in every server pod (registered with each real kubelet),
 * the controller with csi-provisioner, csi-attacher and csi-snapshotter, the snapshot-controller,
 * the StorageClass and VolumeSnapshotClass `dotmesh-csi` (all images built locally; the sidecars
 * from the tools' binaries of the versions the manifest names). A PVC's pod writes on node-0; the
 * pod recreated on node-1 reads the same bytes there: csi-attacher's ControllerPublish moved the
 * branch (a handoff). A VolumeSnapshot of it restores into a PVC whose pod, on node-2, reads the
 * data as it was at the snapshot. Deleting the objects deletes the dots.
 */

describe('the CSI driver deployed with the operator (docs/kubernetes.md manifests)', {
  skip: skipUnless(['root', 'netns', 'k8s']),
  timeout: 25 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let install: DocInstall;
  let ns: string;
  let failed = false;
  afterEach((t) => {
    if ('passed' in t && t.passed === false) failed = true;
  });
  after(() => cleanup.run());

  before(async () => {
    cluster = await useTestCluster(suite);
    const diagnostics = diagnosticsOnFailure(cluster, () => failed, [
      ['deployment/dotmesh-csi-controller', '--all-containers'],
      ...cluster.nodes.map((n) => [`server-${n.name}`, '-c', 'csi-node']),
    ]);
    install = await installDotmeshFromDoc(cluster, cleanup, { docFile: DOC, dist: DIST });
    await waitForDotmesh(cluster, cluster.nodes);
    await installDotmeshCsiFromDoc(cluster, cleanup, install, { docFile: DOC });
    cleanup.add(() => diagnostics(install), 'print diagnostics if a test failed'); // before the CSI objects go
    await waitForDotmeshCsi(cluster, cluster.nodes);
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-opcsi');
  });

  const claim = (name: string, dataSource?: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: ns },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'dotmesh-csi',
      resources: { requests: { storage: '1Mi' } },
      ...(dataSource ? { dataSource } : {}),
    },
  });
  const pod = (name: string, node: string, pvc: string, script: string) =>
    podManifest({
      name,
      namespace: ns,
      node,
      scheduled: true,
      image: cluster.images.busybox.ref,
      command: ['sh', '-c', script],
      ...claimAtData(pvc),
    });
  const apply = (o: unknown) => cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(o) });
  const sha = 'sha256sum /data/blob | cut -d" " -f1';
  /** The nodes the PVC `pvc`'s volume is attached to. */
  const attachedTo = async (pvc: string) =>
    attachedNodes(
      cluster,
      (await cluster.kubectl(['get', 'pvc', pvc, '-n', ns, '-o', 'jsonpath={.spec.volumeName}'])).stdout.trim(),
    );
  const nodeName = (i: number) => cluster.nodes[i]!.name;
  const n0 = () => nodeName(0);
  const n1 = () => nodeName(1);
  const n2 = () => nodeName(2);

  test('a pod writes on node-0; recreated on node-1 it reads the same bytes (csi-attacher moved the branch there)', async () => {
    await apply(claim('data'));
    const written = await runPodToCompletion(
      cluster.kubectl,
      pod('writer', n0(), 'data', `head -c 1048576 /dev/urandom > /data/blob && ${sha}`),
      300_000,
    );
    assert.deepEqual(await attachedTo('data'), [n0()]);
    await deleteAndWait(cluster, ['pod', 'writer', '-n', ns]);
    const read = await runPodToCompletion(cluster.kubectl, pod('reader', n1(), 'data', sha), 300_000);
    assert.equal(read.trim(), written.trim(), 'node-1 reads what node-0 wrote');
    assert.deepEqual(await attachedTo('data'), [n1()], 'attached to node-1 now');
    await deleteAndWait(cluster, ['pod', 'reader', '-n', ns]);
  });

  test('a VolumeSnapshot restores into a PVC whose pod on node-2 reads the data as it was', async () => {
    const before = await runPodToCompletion(cluster.kubectl, pod('before', n1(), 'data', sha), 300_000);
    await deleteAndWait(cluster, ['pod', 'before', '-n', ns]);
    await apply({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name: 'snap', namespace: ns },
      spec: { volumeSnapshotClassName: 'dotmesh-csi', source: { persistentVolumeClaimName: 'data' } },
    });
    await waitFor(
      async () =>
        (await cluster.kubectl(['get', 'volumesnapshot', 'snap', '-n', ns, '-o', 'jsonpath={.status.readyToUse}'])).stdout ===
        'true',
      { timeoutMs: 180_000, intervalMs: 1000, what: 'the VolumeSnapshot ready' },
    );
    // the live data changes after the snapshot; the restore must not see it
    await runPodToCompletion(cluster.kubectl, pod('changer', n1(), 'data', 'echo changed > /data/blob'), 300_000);
    await deleteAndWait(cluster, ['pod', 'changer', '-n', ns]);
    await apply(claim('restored', { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' }));
    const restored = await runPodToCompletion(cluster.kubectl, pod('restorer', n2(), 'restored', sha), 300_000);
    assert.equal(restored.trim(), before.trim(), 'the restored volume holds the data at the snapshot');
    assert.deepEqual(await attachedTo('restored'), [n2()]);
    await deleteAndWait(cluster, ['pod', 'restorer', '-n', ns]);
  });

  test('deleting the claims and the snapshot deletes their dots', async () => {
    await deleteAndWait(cluster, ['volumesnapshot', 'snap', '-n', ns]);
    await deleteAndWait(cluster, ['pvc', 'restored', 'data', '-n', ns]);
    const ip = cluster.nodes[0]!.ip;
    await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, ip);
    const api = new DotmeshClient({ url: `http://${ip}:32607/rpc`, user: 'admin', apiKey: install.apiKey, timeoutMs: 60_000 });
    await waitFor(
      async () =>
        (await api.call('AllDotsAndBranches', null)).Dots.filter((d) => d.MasterBranch.Name.Name.startsWith('csi-')).length === 0,
      { timeoutMs: 180_000, intervalMs: 1000, what: 'no csi- dot left' },
    );
  });
});
