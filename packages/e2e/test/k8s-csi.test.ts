import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  installVolumeSnapshotCrds,
  makeTempDir,
  podManifest,
  runPodToCompletion,
  type ServerProcess,
  skipUnless,
  spawnTracked,
  startCsiDriver,
  startServerProcess,
  type TestCluster,
  testNamespace,
  useTestCluster,
  waitFor,
} from '@dotmesh/testkit';

/**
 * The CSI driver with a real kubelet (the run's shared test cluster): a dotmesh-server and the
 * driver as host processes, the driver registered with node-0's kubelet through its
 * plugin-registration socket, and csi-provisioner (built from its Go module) provisioning a PVC
 * of a dotmesh StorageClass. A pod on node-0 writes through the PVC; the data is in the volume's
 * branch (read back from a commit); deleting the PVC deletes the branch. csi-snapshotter and the
 * snapshot-controller (with the VolumeSnapshot CRDs of their module) take a VolumeSnapshot; a PVC
 * from it holds exactly the snapshot's data, a clone the live data. (No attacher here: the
 * CSIDriver says attachRequired: false, and the pods run on the node that made the volumes.)
 */
const DRIVER = 'csi.dotmesh.io';
describe('the CSI driver with a real kubelet', {
  skip: skipUnless(['root', 'netns', 'btrfs', 'losetup', 'k8s']),
  timeout: 30 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let ns: string;
  let server: ServerProcess;
  after(() => cleanup.run());

  before(async () => {
    cluster = await useTestCluster(suite);
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-csi');
    const node = cluster.nodes[0]!;
    // The kubelet reaches the driver by its unix socket only: driver and server run as host
    // processes in the root namespace, beside the node's files.
    server = await startServerProcess({ cleanup, poolSize: '2G' });
    const dir = await makeTempDir('k8s-csi', cleanup);
    const pluginDir = join(node.paths.kubeletRootDir, 'plugins', DRIVER);
    await mkdir(pluginDir, { recursive: true });
    await startCsiDriver({
      cleanup,
      dir,
      server,
      csiProto: cluster.tools.protos.csi,
      socketPath: join(pluginDir, 'csi.sock'),
      extraArgs: [
        `--registration-dir=${join(node.paths.kubeletRootDir, 'plugins_registry')}`,
        `--registration-proto=${cluster.tools.protos.pluginRegistration}`,
      ],
    });
    await installVolumeSnapshotCrds(cluster, cleanup);
    spawnTracked(
      cluster.tools.bin('snapshot-controller'),
      [`--kubeconfig=${cluster.adminKubeconfig}`, '--leader-election=false'],
      {
        cleanup,
      },
    );
    spawnTracked(
      cluster.tools.bin('csi-snapshotter'),
      [
        `--csi-address=${join(pluginDir, 'csi.sock')}`,
        `--kubeconfig=${cluster.adminKubeconfig}`,
        '--leader-election=false',
        '--extra-create-metadata',
        '--timeout=60s',
      ],
      { cleanup },
    );
    spawnTracked(
      cluster.tools.bin('csi-provisioner'),
      [
        `--csi-address=${join(pluginDir, 'csi.sock')}`,
        `--kubeconfig=${cluster.adminKubeconfig}`,
        '--leader-election=false',
        '--extra-create-metadata',
        '--timeout=60s',
      ],
      { cleanup },
    );
    const manifest = [
      {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'CSIDriver',
        metadata: { name: DRIVER },
        spec: { attachRequired: false, podInfoOnMount: false },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'dotmesh-user', namespace: ns },
        stringData: { user: 'admin', apiKey: server.apiKey },
      },
      {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'StorageClass',
        metadata: { name: `dotmesh-${ns}` },
        provisioner: DRIVER,
        reclaimPolicy: 'Delete',
        volumeBindingMode: 'Immediate',
        parameters: Object.fromEntries(
          ['provisioner', 'node-stage', 'node-publish'].flatMap((k) => [
            [`csi.storage.k8s.io/${k}-secret-name`, 'dotmesh-user'],
            [`csi.storage.k8s.io/${k}-secret-namespace`, ns],
          ]),
        ),
      },
    ];
    manifest.push({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshotClass',
      metadata: { name: `dotmesh-${ns}` },
      driver: DRIVER,
      deletionPolicy: 'Delete',
      parameters: {
        'csi.storage.k8s.io/snapshotter-secret-name': 'dotmesh-user',
        'csi.storage.k8s.io/snapshotter-secret-namespace': ns,
      },
    } as never);
    // Cluster-wide and immutable in part (attachRequired): the next install of the driver makes its own.
    cleanup.add(() => cluster.kubectl(['delete', 'csidriver', DRIVER, '--ignore-not-found']).then(() => undefined));
    for (const m of manifest) await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(m) });
    cleanup.add(() => cluster.kubectl(['delete', 'volumesnapshotclass', `dotmesh-${ns}`, '--wait=false']).then(() => undefined));
    cleanup.add(() => cluster.kubectl(['delete', 'storageclass', `dotmesh-${ns}`, '--wait=false']).then(() => undefined));
  });

  test('the kubelet lists the driver; a PVC is provisioned, a pod writes through it, the data is in the branch; deleting the PVC deletes the branch', async () => {
    const node = cluster.nodes[0]!;
    await waitFor(
      async () =>
        (await cluster.kubectl(['get', 'csinode', node.name, '-o', 'jsonpath={.spec.drivers[*].name}'])).stdout.includes(DRIVER),
      { timeoutMs: 60_000, what: `${DRIVER} in the CSINode of ${node.name}` },
    );
    const pvc = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'data', namespace: ns },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: `dotmesh-${ns}`, resources: { requests: { storage: '1Mi' } } },
    };
    await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pvc) });
    const pvName = await waitFor(
      async () => {
        const r = await cluster.kubectl(['get', 'pvc', 'data', '-n', ns, '-o', 'jsonpath={.status.phase} {.spec.volumeName}']);
        const [phase, name] = r.stdout.trim().split(' ');
        return phase === 'Bound' ? name : undefined;
      },
      { timeoutMs: 120_000, what: 'the PVC bound' },
    );
    const volumeId = (await cluster.kubectl(['get', 'pv', pvName, '-o', 'jsonpath={.spec.csi.volumeHandle}'])).stdout.trim();
    assert.match(volumeId, /^v1\/admin\/[0-9a-f-]{36}\/[0-9a-f-]{36}$/);
    const branchId = volumeId.split('/')[3]!;

    const out = await runPodToCompletion(
      cluster.kubectl,
      podManifest({
        name: 'writer',
        namespace: ns,
        node: node.name,
        image: cluster.images.busybox.ref,
        command: ['sh', '-c', 'echo written-by-a-pod > /data/file && cat /data/file'],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      }),
      180_000,
    );
    assert.equal(out.trim(), 'written-by-a-pod');
    const b = await server.admin.call('BranchById', branchId);
    const commit = await server.admin.call('Commit', {
      Namespace: b.Namespace,
      Name: b.Name,
      Branch: b.Branch,
      Message: 'check',
      Metadata: {},
    });
    const path = await server.admin.call('MountCommit', { FilesystemId: branchId, CommitId: commit });
    assert.equal(await readFile(join(path, '__default__', 'file'), 'utf8'), 'written-by-a-pod\n');

    await cluster.kubectl(['delete', 'pod', 'writer', '-n', ns, '--wait=true', '--timeout=120s']);
    await waitFor(async () => (await server.admin.call('BranchPublications', branchId)).Uses.length === 0, {
      timeoutMs: 60_000,
      what: 'the kubelet unstaged and unpublished the volume',
    });
    await cluster.kubectl(['delete', 'pvc', 'data', '-n', ns, '--wait=true', '--timeout=120s']);
    await waitFor(
      async () =>
        !(await server.admin.call('AllDotsAndBranches', null)).Dots.some((d) => d.MasterBranch.Name.Name.startsWith('csi-')),
      { timeoutMs: 120_000, what: 'the volume’s dot deleted with the PVC' },
    );
    const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(branchId));
    assert.deepEqual(mounts, [], 'no mount of the volume is left');
  });

  /** Creates a PVC of the class (from `dataSource` when given) and waits until it is Bound. */
  async function boundPvc(name: string, dataSource?: Record<string, string>): Promise<string> {
    const pvc = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: ns },
      spec: {
        accessModes: ['ReadWriteOnce'],
        storageClassName: `dotmesh-${ns}`,
        resources: { requests: { storage: '1Mi' } },
        ...(dataSource ? { dataSource } : {}),
      },
    };
    await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pvc) });
    return waitFor(
      async () => {
        const r = await cluster.kubectl(['get', 'pvc', name, '-n', ns, '-o', 'jsonpath={.status.phase} {.spec.volumeName}']);
        const [phase, pv] = r.stdout.trim().split(' ');
        return phase === 'Bound' ? pv : undefined;
      },
      { timeoutMs: 120_000, what: `PVC ${name} bound` },
    );
  }

  /** Runs `script` in a pod on node-0 with PVC `claim` at /data; returns its output; deletes the pod. */
  async function inPod(name: string, claim: string, script: string): Promise<string> {
    const out = await runPodToCompletion(
      cluster.kubectl,
      podManifest({
        name,
        namespace: ns,
        node: cluster.nodes[0]!.name,
        image: cluster.images.busybox.ref,
        command: ['sh', '-c', script],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      }),
      180_000,
    );
    await cluster.kubectl(['delete', 'pod', name, '-n', ns, '--wait=true', '--timeout=120s']);
    return out.trim();
  }

  test('a VolumeSnapshot; a PVC from it holds exactly the snapshot’s data; a clone holds the live data; all go with their objects', async () => {
    await boundPvc('source');
    assert.equal(await inPod('w1', 'source', 'echo at-snapshot > /data/f && cat /data/f'), 'at-snapshot');
    const snap = {
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name: 'snap', namespace: ns },
      spec: { volumeSnapshotClassName: `dotmesh-${ns}`, source: { persistentVolumeClaimName: 'source' } },
    };
    await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(snap) });
    await waitFor(
      async () =>
        (
          await cluster.kubectl(['get', 'volumesnapshot', 'snap', '-n', ns, '-o', 'jsonpath={.status.readyToUse}'])
        ).stdout.trim() === 'true',
      { timeoutMs: 120_000, what: 'the VolumeSnapshot ready to use' },
    );
    assert.equal(
      await inPod('w2', 'source', 'echo after-snapshot > /data/f && echo new > /data/g && cat /data/f'),
      'after-snapshot',
    );

    await boundPvc('restored', { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' });
    assert.equal(await inPod('r1', 'restored', 'cat /data/f; ls /data'), 'at-snapshot\nf');
    await boundPvc('clone', { kind: 'PersistentVolumeClaim', name: 'source' });
    assert.equal(await inPod('c1', 'clone', 'cat /data/f /data/g'), 'after-snapshot\nnew');

    for (const claim of ['restored', 'clone', 'source']) {
      await cluster.kubectl(['delete', 'pvc', claim, '-n', ns, '--wait=true', '--timeout=120s']);
    }
    await cluster.kubectl(['delete', 'volumesnapshot', 'snap', '-n', ns, '--wait=true', '--timeout=120s']);
    await waitFor(
      async () =>
        !(await server.admin.call('AllDotsAndBranches', null)).Dots.some((d) => d.MasterBranch.Name.Name.startsWith('csi-')),
      { timeoutMs: 120_000, what: 'every volume’s dot deleted with its objects' },
    );
  });
});
