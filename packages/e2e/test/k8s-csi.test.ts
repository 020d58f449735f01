import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
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
 * branch (read back from a commit); deleting the PVC deletes the branch. (No attacher here:
 * the CSIDriver says attachRequired: false, and the pod runs on the node that made the volume.)
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
    for (const m of manifest) await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(m) });
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
});
