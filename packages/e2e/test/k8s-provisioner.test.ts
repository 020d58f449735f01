import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  claimAtData,
  deleteAndWait,
  makeTempDir,
  podManifest,
  runPodToCompletion,
  type ServerProcess,
  skipUnless,
  spawnTracked,
  type TestCluster,
  testNamespace,
  useTestCluster,
  waitFor,
} from '@dotmesh/testkit';
import {
  apply,
  dotExists,
  expectClaimsRefused,
  hashInNewCommit,
  type RefusedClaim,
  startFlexServer,
  waitUnused,
  writeRandomScript,
} from './k8s-volumes.ts';

/**
 * The dynamic provisioner (the original's TestKubernetesOperator DynamicProvisioning, PVCReuse
 * and PVCMakeNew, and TestKubernetesVolumes DynamicProvisioning) on node-0 of the run's shared
 * test cluster, the provisioner alone (k8s-operator.test.ts runs it from the manifest):
 * dotmesh-server and the provisioner run as host processes: the server beside node-0 (installing its FlexVolume driver there), the provisioner
 * (the bundle `npm run build` makes) with a kubeconfig of a service account holding the original's
 * provisioner ClusterRole. The provisioner runs under a name of this test's own, so it never
 * answers another test's StorageClass.
 */
const PROVISIONER_BUNDLE = join(import.meta.dirname, '../../../dist/dotmesh-provisioner.mjs');

describe('the dynamic provisioner with a real cluster', {
  skip: skipUnless(['root', 'netns', 'btrfs', 'losetup', 'k8s']),
  timeout: 20 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let ns: string;
  let server: ServerProcess;
  let className: string;
  after(() => cleanup.run());

  before(async () => {
    cluster = await useTestCluster(suite);
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-prov');
    className = `dotmesh-${ns}`;
    server = await startFlexServer(cleanup, cluster.nodes[0]!);
    const name = `dotmesh/test-${ns}`;
    const provisioner = spawnTracked(
      process.execPath,
      [PROVISIONER_BUNDLE, `--kubeconfig=${await provisionerKubeconfig()}`, `--name=${name}`, '--resync-seconds=2'],
      { cleanup },
    );
    await waitFor(() => provisioner.output().includes('provisioner running'), {
      timeoutMs: 60_000,
      what: 'the provisioner running',
    });
    // Undone newest first: pods (unmounted while the server runs), claims, the PVs they leave, the class.
    cleanup.add(() => cluster.kubectl(['delete', 'storageclass', className, '--ignore-not-found']), 'delete the StorageClass');
    cleanup.add(async () => {
      const { stdout } = await cluster.kubectl([
        'get',
        'pv',
        '-o',
        `jsonpath={range .items[?(@.spec.storageClassName=="${className}")]}{.metadata.name} {end}`,
      ]);
      for (const pv of stdout.trim().split(' ').filter(Boolean)) await deleteAndWait(cluster, ['pv', pv]);
    }, 'delete the PVs of the class');
    cleanup.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claims');
    cleanup.add(() => deleteAndWait(cluster, ['pod', '--all', '-n', ns]), 'delete the pods while the server runs');
    await apply(cluster, {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: className },
      provisioner: name,
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'Immediate',
      parameters: { dotmeshNamespace: 'admin', dotmeshNamespaceAllowlist: `${ns}-other=alice` },
    });
  });

  /**
   * A kubeconfig for a service account with exactly the original's ClusterRole
   * `dotmesh-provisioner-runner` (docs/kubernetes.md), so the test proves those rights suffice.
   */
  async function provisionerKubeconfig(): Promise<string> {
    const role = `dotmesh-provisioner-runner-${ns}`;
    cleanup.add(async () => {
      await cluster.kubectl(['delete', 'clusterrolebinding', role, '--ignore-not-found']);
      await cluster.kubectl(['delete', 'clusterrole', role, '--ignore-not-found']);
    }, 'delete the provisioner’s ClusterRole and binding');
    await apply(cluster, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'dotmesh-provisioner', namespace: ns } });
    await apply(cluster, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: role },
      rules: [
        { apiGroups: [''], resources: ['persistentvolumes'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
        { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get', 'list', 'watch', 'update'] },
        { apiGroups: ['storage.k8s.io'], resources: ['storageclasses'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['list', 'watch', 'create', 'update', 'patch'] },
      ],
    });
    await apply(cluster, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: role },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ kind: 'ServiceAccount', name: 'dotmesh-provisioner', namespace: ns }],
    });
    const token = (await cluster.kubectl(['create', 'token', 'dotmesh-provisioner', '-n', ns, '--duration=2h'])).stdout.trim();
    const file = join(await makeTempDir('k8s-provisioner', cleanup), 'kubeconfig');
    const kubeconfig = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: cluster.apiServerUrl, 'certificate-authority': cluster.caFile } }],
      users: [{ name: 'provisioner', user: { token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'provisioner' } }],
      'current-context': 'test',
    };
    await writeFile(file, JSON.stringify(kubeconfig), { mode: 0o600 });
    return file;
  }

  async function claim(name: string, annotations: Record<string, string> = {}): Promise<void> {
    await apply(cluster, {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: ns, annotations },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: className, resources: { requests: { storage: '1Gi' } } },
    });
  }

  async function boundPv(name: string): Promise<string> {
    return waitFor(
      async () => {
        const r = await cluster.kubectl(['get', 'pvc', name, '-n', ns, '-o', 'jsonpath={.status.phase} {.spec.volumeName}']);
        const [phase, pv] = r.stdout.trim().split(' ');
        return phase === 'Bound' ? pv : undefined;
      },
      { timeoutMs: 120_000, what: `PVC ${name} bound` },
    );
  }

  /** Runs `script` in a pod on node-0 with claim `name` at /data; returns its output once the pod is gone and its use ended. */
  async function inPod(pod: string, name: string, script: string, fsIdOf?: string): Promise<string> {
    const out = await runPodToCompletion(
      cluster.kubectl,
      podManifest({
        name: pod,
        namespace: ns,
        node: cluster.nodes[0]!.name,
        image: cluster.images.busybox.ref,
        command: ['sh', '-c', script],
        ...claimAtData(name),
      }),
      180_000,
    );
    await deleteAndWait(cluster, ['pod', pod, '-n', ns]);
    if (fsIdOf) {
      const fsId = await server.admin.call('Lookup', { Namespace: 'admin', Name: fsIdOf, Branch: '' });
      await waitUnused(server, fsId, `the kubelet unmounted ${fsIdOf} after pod ${pod}`);
    }
    return out.trim();
  }

  test('DynamicProvisioning: a PVC of the class gets a FlexVolume PV; a pod writes; a commit of admin/<pvc name> holds it', async () => {
    assert.equal(await dotExists(server, 'admin', 'dynamic'), false);
    await claim('dynamic');
    const pv = await boundPv('dynamic');
    const spec = JSON.parse((await cluster.kubectl(['get', 'pv', pv, '-o', 'json'])).stdout) as {
      spec: { flexVolume: unknown; persistentVolumeReclaimPolicy: string };
    };
    assert.deepEqual(spec.spec.flexVolume, {
      driver: 'dotmesh.io/dm',
      options: { namespace: 'admin', name: 'dynamic', subdot: '__default__' },
    });
    const hash = await inPod('writer', 'dynamic', writeRandomScript('blob', false), 'dynamic');
    assert.match(hash, /^[0-9a-f]{64}$/);
    assert.equal(await hashInNewCommit(server, 'admin', 'dynamic', 'blob'), hash);
  });

  test('PVCReuse: a second PVC naming the same dot (dotmeshName) sees the data; PVCMakeNew: another name starts empty', async () => {
    const written = await hashInNewCommit(server, 'admin', 'dynamic', 'blob');
    await claim('reuse', { dotmeshName: 'dynamic' });
    await boundPv('reuse');
    assert.equal(await inPod('reader', 'reuse', 'sha256sum /data/blob | cut -d" " -f1', 'dynamic'), written);

    await claim('makenew', { dotmeshName: 'fresh', dotmeshSubdot: 'db' });
    await boundPv('makenew');
    assert.equal(await inPod('fresh', 'makenew', 'ls -A /data | wc -l && echo new > /data/f', 'fresh'), '0');
    assert.ok(await dotExists(server, 'admin', 'fresh'), 'the dot was made on first use');
    const fsId = await server.admin.call('Lookup', { Namespace: 'admin', Name: 'fresh', Branch: '' });
    const commit = await server.admin.call('Commit', {
      Namespace: 'admin',
      Name: 'fresh',
      Branch: '',
      Message: 'c',
      Metadata: {},
    });
    const path = await server.admin.call('MountCommit', { FilesystemId: fsId, CommitId: commit });
    assert.equal(await readFile(join(path, 'db', 'f'), 'utf8'), 'new\n', 'the subdot annotation chose the directory');
  });

  test('bad input: hostile annotations and a dotmesh namespace outside the allowlist give an Event on the PVC and no PV', async () => {
    const cases: RefusedClaim[] = [
      ['hostile-name', { dotmeshName: '../../etc' }, /invalid dot name "\.\.\/\.\.\/etc"/],
      ['hostile-subdot', { dotmeshSubdot: 'a/../../b' }, /invalid subdot name/],
      ['hostile-ns', { dotmeshNamespace: 'admin;rm' }, /invalid namespace name/],
      ['outside', { dotmeshNamespace: 'alice' }, new RegExp(`Kubernetes namespace ${ns} may not use dotmesh namespace alice`)],
    ];
    await expectClaimsRefused(cluster, ns, cases, claim);
    assert.equal(await dotExists(server, 'alice', 'outside'), false);
  });

  test('deleting a PVC removes its PV (reclaim policy Delete) and keeps the dot with its commits', async () => {
    const pv = (await cluster.kubectl(['get', 'pvc', 'dynamic', '-n', ns, '-o', 'jsonpath={.spec.volumeName}'])).stdout.trim();
    const commits = await server.admin.call('Commits', { Namespace: 'admin', Name: 'dynamic', Branch: '' });
    await deleteAndWait(cluster, ['pvc', 'dynamic', '-n', ns]);
    await waitFor(
      async () => (await cluster.kubectl(['get', 'pv', pv, '--ignore-not-found', '-o', 'name'])).stdout.trim() === '',
      { timeoutMs: 60_000, what: `PV ${pv} removed` },
    );
    assert.ok(await dotExists(server, 'admin', 'dynamic'), 'the dot is kept');
    assert.deepEqual(await server.admin.call('Commits', { Namespace: 'admin', Name: 'dynamic', Branch: '' }), commits);
  });
});
