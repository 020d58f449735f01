import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc/client';
import { removeNode } from '@dotmesh/rpc/remove-node';
import {
  addClusterNode,
  Cleanup,
  claimAtData,
  csiClaim,
  type DocInstall,
  deleteAndWait,
  detachLoopDevicesUnder,
  installDotmeshCsiFromDoc,
  installDotmeshFromDoc,
  loseClusterNode,
  nodeStatus,
  podManifest,
  removeClusterNode,
  routeCheckRoot,
  runPodToCompletion,
  skipUnless,
  type TestCluster,
  testNamespace,
  unmountUnder,
  useTestCluster,
  waitFor,
  waitForDotmesh,
  waitForDotmeshCsi,
  waitForPodPhase,
} from '@dotmesh/testkit';
import { DIST, DOC, diagnosticsOnFailure, getJson } from './k8s-operator-pods.ts';
import { attachedNodes } from './k8s-volumes.ts';

/**
 * The CSI driver csi.dotmesh.io as docs/kubernetes.md deploys it with the operator, on the run's
 * shared test cluster: the node plugin in every server pod (registered with each real kubelet),
 * the controller with csi-provisioner, csi-attacher and csi-snapshotter, the snapshot-controller,
 * the StorageClass and VolumeSnapshotClass `dotmesh-csi` (all images built locally; the sidecars
 * from the tools' binaries of the versions the manifest names). A PVC's pod writes on node-0; the
 * pod recreated on node-1 reads the same bytes there: csi-attacher's ControllerPublish moved the
 * branch (a handoff). A VolumeSnapshot of it restores into a PVC whose pod, on node-2, reads the
 * data as it was at the snapshot. A VolumeGroupSnapshot of two PVCs that are subdots of one dot
 * (written by two running pods) is one commit of the dot; PVCs restored from its members hold
 * each volume as it was then; a group over two dots is refused, its status saying why. A node
 * of the test's own, lost for real while a pod writes to a volume there (every process of it
 * SIGKILLed), is recovered as a user does on Kubernetes ≥ 1.28: Dotmesh fails the branch over,
 * the out-of-service taint detaches the volume, and the pod made again elsewhere reads every
 * committed byte. Deleting the objects deletes the dots.
 */

describe('the CSI driver deployed with the operator (docs/kubernetes.md manifests)', {
  skip: skipUnless(['root', 'netns', 'k8s']),
  timeout: 25 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  /** The nodes the tests added, removed before the install goes. */
  const extraNodes = new Cleanup();
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
    // The CSI manifest applied while the server pods start: both come up at once.
    await installDotmeshCsiFromDoc(cluster, cleanup, install, { docFile: DOC });
    cleanup.add(() => diagnostics(install), 'print diagnostics if a test failed'); // before the CSI objects go
    await waitForDotmesh(cluster, cluster.nodes);
    await waitForDotmeshCsi(cluster, cluster.nodes);
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-opcsi');
    cleanup.add(() => extraNodes.run(), 'remove the nodes the tests added');
  });

  const claim = (name: string, dataSource?: Record<string, string>) =>
    csiClaim({ name, namespace: ns, storage: '1Mi', ...(dataSource ? { dataSource } : {}) });
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
  /** The API of node `i` of the shared cluster (its route checked first). */
  const nodeApi = async (i: number) => {
    const ip = cluster.nodes[i]!.ip;
    await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, ip);
    return new DotmeshClient({ url: `http://${ip}:32607/rpc`, user: 'admin', apiKey: install.apiKey, timeoutMs: 60_000 });
  };
  const pvOf = async (pvc: string) =>
    (await cluster.kubectl(['get', 'pvc', pvc, '-n', ns, '-o', 'jsonpath={.spec.volumeName}'])).stdout.trim();
  const volumeHandle = async (pvc: string) =>
    (await cluster.kubectl(['get', 'pv', await pvOf(pvc), '-o', 'jsonpath={.spec.csi.volumeHandle}'])).stdout.trim();
  /** The branch id of a volume id `v1/<namespace>/<dot id>/<branch id>` (docs/kubernetes.md "Ids"). */
  const volumeBranch = (handle: string) => {
    const branch = handle.split('/')[3];
    assert.ok(handle.startsWith('v1/') && branch, `a volume id: ${handle}`);
    return branch;
  };
  const masterOf = async (api: DotmeshClient, branchId: string) =>
    (await api.call('AllDotsAndBranches', null)).Dots.flatMap((d) => [d.MasterBranch, ...(d.OtherBranches ?? [])]).find(
      (b) => b.Id === branchId,
    )?.Master;
  const exists = async (args: readonly string[]) =>
    (await cluster.kubectl(['get', ...args, '--ignore-not-found', '-o', 'name'])).stdout.trim() !== '';
  const volumeAttachments = async (pv: string) =>
    (
      await getJson<{ items: { spec: { source: { persistentVolumeName?: string } } }[] }>(cluster.kubectl, [
        'get',
        'volumeattachments',
      ])
    ).items.filter((a) => a.spec.source.persistentVolumeName === pv);
  /**
   * Runs `script` in pod `name` on `node` with `pvc` at /data and returns the `lines` lines it
   * printed while the pod still runs (it sleeps after): its volume stays attached and published
   * for the checks that follow (a finished pod's volumes are unmounted and detached at once).
   * The caller deletes the pod.
   */
  const podOutput = async (name: string, node: string, pvc: string, script: string, lines = 1) => {
    await apply(JSON.parse(pod(name, node, pvc, `${script} && exec sleep 100000`)));
    await waitForPodPhase(cluster.kubectl, ns, name, ['Running'], 300_000);
    return waitFor(
      async () => {
        const out = (await cluster.kubectl(['logs', name, '-n', ns])).stdout.trim().split('\n').filter(Boolean);
        return out.length >= lines ? out : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: `what pod ${name} printed` },
    );
  };
  /** A VolumeSnapshot `name` of the PVC `pvc`, once readyToUse. */
  const snapshotOf = async (pvc: string, name: string) => {
    await apply({
      apiVersion: 'snapshot.storage.k8s.io/v1',
      kind: 'VolumeSnapshot',
      metadata: { name, namespace: ns },
      spec: { volumeSnapshotClassName: 'dotmesh-csi', source: { persistentVolumeClaimName: pvc } },
    });
    await waitFor(
      async () =>
        (await cluster.kubectl(['get', 'volumesnapshot', name, '-n', ns, '-o', 'jsonpath={.status.readyToUse}'])).stdout ===
        'true',
      { timeoutMs: 180_000, intervalMs: 1000, what: `the VolumeSnapshot ${name} ready` },
    );
  };
  const n0 = () => nodeName(0);
  const n1 = () => nodeName(1);
  const n2 = () => nodeName(2);

  test('a pod writes on node-0; recreated on node-1 it reads the same bytes (csi-attacher moved the branch there)', async () => {
    await apply(claim('data'));
    const written = await podOutput('writer', n0(), 'data', `head -c 1048576 /dev/urandom > /data/blob && sync && ${sha}`);
    assert.deepEqual(await attachedTo('data'), [n0()]);
    await deleteAndWait(cluster, ['pod', 'writer', '-n', ns]);
    const read = await podOutput('reader', n1(), 'data', sha);
    assert.deepEqual(read, written, 'node-1 reads what node-0 wrote');
    assert.deepEqual(await attachedTo('data'), [n1()], 'attached to node-1 now');
    await deleteAndWait(cluster, ['pod', 'reader', '-n', ns]);
  });

  test('a VolumeSnapshot restores into a PVC whose pod on node-2 reads the data as it was', async () => {
    const before = await runPodToCompletion(cluster.kubectl, pod('before', n1(), 'data', sha), 300_000);
    await deleteAndWait(cluster, ['pod', 'before', '-n', ns]);
    await snapshotOf('data', 'snap');
    // the live data changes after the snapshot; the restore must not see it
    await runPodToCompletion(cluster.kubectl, pod('changer', n1(), 'data', 'echo changed > /data/blob'), 300_000);
    await deleteAndWait(cluster, ['pod', 'changer', '-n', ns]);
    await apply(claim('restored', { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: 'snap' }));
    const restored = await podOutput('restorer', n2(), 'restored', sha);
    assert.equal(restored.join('\n'), before.trim(), 'the restored volume holds the data at the snapshot');
    assert.deepEqual(await attachedTo('restored'), [n2()]);
    await deleteAndWait(cluster, ['pod', 'restorer', '-n', ns]);
  });

  test('a VolumeGroupSnapshot of two subdots of one dot is one commit; its members restore each volume as it was; a group over two dots is refused', async () => {
    const api = await nodeApi(0);
    const dot = 'gs-group';
    const commitsOfDot = () => api.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' });
    const classParams = JSON.parse(
      (await cluster.kubectl(['get', 'storageclass', 'dotmesh-csi', '-o', 'jsonpath={.parameters}'])).stdout,
    ) as Record<string, string>;
    cleanup.add(
      () => cluster.kubectl(['delete', 'storageclass', 'dotmesh-grouped', '--ignore-not-found']),
      'delete the StorageClass dotmesh-grouped',
    );
    await apply({
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: 'dotmesh-grouped' },
      provisioner: 'csi.dotmesh.io',
      reclaimPolicy: 'Delete',
      parameters: { ...classParams, dotmeshDot: `admin/${dot}` },
    });
    // grp-db and grp-logs: subdots of admin/gs-group (the group gs-snap); grp-db with grp-other,
    // a plain PVC (its own dot), make the group gs-mixed, which is refused.
    const grouped = ['grp-db', 'grp-logs'];
    const labelled = (name: string, labels: Record<string, string>, storageClassName = 'dotmesh-csi') => {
      const c = claim(name);
      return { ...c, metadata: { ...c.metadata, labels }, spec: { ...c.spec, storageClassName } };
    };
    await apply({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        labelled('grp-db', { 'gs-group': 'app', 'gs-mixed': 'yes' }, 'dotmesh-grouped'),
        labelled('grp-logs', { 'gs-group': 'app' }, 'dotmesh-grouped'),
        labelled('grp-other', { 'gs-mixed': 'yes' }),
      ],
    });
    // Two pods write (and stay, their volumes published); the group snapshot is taken while they run.
    const written = await Promise.all(
      grouped.map(
        async (name) =>
          (await podOutput(`${name}-w`, n0(), name, `head -c 524288 /dev/urandom > /data/blob && sync && ${sha}`))[0]!,
      ),
    );
    await waitFor(
      async () =>
        (await cluster.kubectl(['get', 'pvc', 'grp-other', '-n', ns, '-o', 'jsonpath={.status.phase}'])).stdout === 'Bound',
      { timeoutMs: 120_000, intervalMs: 500, what: 'the PVC grp-other bound' },
    );
    const commitsBefore = await commitsOfDot();
    const group = (name: string, matchLabels: Record<string, string>) => ({
      apiVersion: 'groupsnapshot.storage.k8s.io/v1',
      kind: 'VolumeGroupSnapshot',
      metadata: { name, namespace: ns },
      spec: { volumeGroupSnapshotClassName: 'dotmesh-csi', source: { selector: { matchLabels } } },
    });
    await apply({
      apiVersion: 'v1',
      kind: 'List',
      items: [group('gs-snap', { 'gs-group': 'app' }), group('gs-mixed', { 'gs-mixed': 'yes' })],
    });
    const vgs = (name: string, path: string) =>
      cluster.kubectl(['get', 'volumegroupsnapshot', name, '-n', ns, '-o', `jsonpath={${path}}`]).then((r) => r.stdout);
    await waitFor(async () => (await vgs('gs-snap', '.status.readyToUse')) === 'true', {
      timeoutMs: 180_000,
      intervalMs: 1000,
      what: 'the VolumeGroupSnapshot gs-snap ready',
    });
    // The group over two dots is refused, its status saying why, and commits nothing.
    const refusal = await waitFor(
      async () => {
        const m = await vgs('gs-mixed', '.status.error.message');
        return m.includes('different dots') ? m : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000, what: 'the VolumeGroupSnapshot gs-mixed refused' },
    );
    assert.match(refusal, /InvalidArgument/);
    assert.match(refusal, new RegExp(`dot admin/${dot}`));
    assert.match(refusal, /dotmeshDot/);
    const commitsAfter = await commitsOfDot();
    assert.equal(commitsAfter.length, commitsBefore.length + 1, 'one commit of the dot, for gs-snap');
    assert.equal(commitsAfter.at(-1)?.Metadata['csi-kind'], 'group-snapshot');

    // Its members: VolumeSnapshots the snapshot-controller made, owned by the group, one per PVC.
    const members = new Map(
      (
        await getJson<{
          items: {
            metadata: { name: string; ownerReferences?: { kind: string; name: string }[] };
            spec: { source: { persistentVolumeClaimName?: string } };
          }[];
        }>(cluster.kubectl, ['get', 'volumesnapshots', '-n', ns])
      ).items
        .filter((v) => v.metadata.ownerReferences?.some((o) => o.kind === 'VolumeGroupSnapshot' && o.name === 'gs-snap'))
        .map((v) => [v.spec.source.persistentVolumeClaimName ?? '', v.metadata.name]),
    );
    assert.deepEqual([...members.keys()].sort(), grouped);

    // The pods write more; PVCs restored from the members hold the group's moment.
    await Promise.all(
      grouped.map((name) =>
        cluster.kubectl(['exec', '-n', ns, `${name}-w`, '--', 'sh', '-c', 'echo changed > /data/blob && sync']),
      ),
    );
    await apply({
      apiVersion: 'v1',
      kind: 'List',
      items: grouped.map((name) =>
        claim(`${name}-r`, { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: members.get(name)! }),
      ),
    });
    const reader = podManifest({
      name: 'grp-reader',
      namespace: ns,
      node: n0(),
      scheduled: true,
      image: cluster.images.busybox.ref,
      command: ['sh', '-c', 'sha256sum /r0/blob /r1/blob | cut -d" " -f1'],
      volumes: grouped.map((name, i) => ({ name: `r${i}`, persistentVolumeClaim: { claimName: `${name}-r` } })),
      volumeMounts: grouped.map((_, i) => ({ name: `r${i}`, mountPath: `/r${i}` })),
    });
    const read = await runPodToCompletion(cluster.kubectl, reader, 300_000);
    assert.deepEqual(read.trim().split('\n'), written, 'each restored PVC holds its volume at the group snapshot');

    // Everything goes: the pods, then the groups (the group's commit with them) and the PVCs
    // (the restored branches, the subdots), then the dot once the restored branches are gone.
    await deleteAndWait(cluster, ['pod', 'grp-reader', ...grouped.map((n) => `${n}-w`), '-n', ns]);
    await Promise.all([
      deleteAndWait(cluster, ['volumegroupsnapshot', 'gs-mixed', 'gs-snap', '-n', ns]),
      deleteAndWait(cluster, ['pvc', ...grouped.flatMap((n) => [`${n}-r`, n]), 'grp-other', '-n', ns]),
    ]);
    await waitFor(
      async () => !(await api.call('FindCommits', { Key: 'csi-kind', Value: 'group-snapshot' })).some((c) => c.Name === dot),
      { timeoutMs: 120_000, intervalMs: 1000, what: 'the group’s commit deleted with the VolumeGroupSnapshot' },
    );
    await waitFor(
      () =>
        api.call('Delete', { Namespace: 'admin', Name: dot }).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 120_000, intervalMs: 1000, what: `the dot admin/${dot} deleted (its restored volumes gone)` },
    );
  });

  test('a node lost while its pod writes to a volume: failover moves the branch, the out-of-service taint detaches it, the pod made again on node-1 reads every committed byte', async (t) => {
    const { kubectl } = cluster;
    const api = await nodeApi(0);
    // The pool of the node to lose outlives its machine here (install.pools is the host's): it
    // goes after the node (registered first, run last), unmounted and its loop device detached.
    let lostPool: string | undefined;
    extraNodes.add(async () => {
      if (!lostPool) return;
      await unmountUnder(lostPool);
      await detachLoopDevicesUnder(lostPool);
      await rm(lostPool, { recursive: true, force: true });
    }, 'remove the lost node’s pool');
    // Only the server image goes onto it (its server pod with the CSI node plugin, and the
    // test's pod, are all it runs), not the operator's and provisioner's (~5 s each).
    const lost = await addClusterNode(cluster, { cleanup: extraNodes, images: [install.serverImage] });
    lostPool = join(install.pools, lost.name);
    await waitForDotmesh(cluster, [lost]);
    await waitForDotmeshCsi(cluster, [lost]);

    // A pod on the node writes 2 MiB and keeps the volume published; a VolumeSnapshot commits it
    // (a sync branch: the commit is acknowledged once another node holds it).
    await apply(claim('lossy'));
    const writer = 'lossy-writer';
    const [written] = await podOutput(writer, lost.name, 'lossy', `head -c 2097152 /dev/urandom > /data/blob && sync && ${sha}`);
    assert.deepEqual(await attachedTo('lossy'), [lost.name]);
    const branchId = volumeBranch(await volumeHandle('lossy'));
    const lostId = (await api.call('BranchPublications', branchId)).Node;
    assert.ok(lostId, 'the volume is published on the node to lose');
    await snapshotOf('lossy', 'lossy-snap');
    // Written after the commit: on the lost host only (its uncommitted data goes with it).
    await kubectl(['exec', '-n', ns, writer, '--', 'sh', '-c', 'echo uncommitted > /data/after && sync']);

    // The host vanishes: every process of it killed by PID, its link down.
    const killedAt = Date.now();
    const killed = await loseClusterNode(cluster, lost.name);
    t.diagnostic(`${lost.name} lost: ${killed.length} processes SIGKILLed`);

    // Dotmesh: the branch fails over to a live node (lease TTL 10 s + sweep 3 s; generous here,
    // the timed bound is P12's).
    const liveIds = new Set(
      await Promise.all([0, 1, 2].map(async (i) => (await (await nodeApi(i)).call('PoolInfo', {})).NodeId)),
    );
    const failedOverTo = await waitFor(
      async () => {
        const m = await masterOf(api, branchId);
        return m && m !== lostId ? m : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250, what: `the branch of the lost node ${lostId} failed over` },
    );
    t.diagnostic(`the branch failed over to ${failedOverTo} ${Date.now() - killedAt} ms after the loss`);
    assert.ok(liveIds.has(failedOverTo), `failed over to a live node (${[...liveIds].join(', ')}), not ${failedOverTo}`);

    // Kubernetes: once the Node is NotReady, the out-of-service taint (non-graceful node
    // shutdown) force-deletes its pods and detaches their volumes without waiting for unmounts.
    await waitFor(async () => (await nodeStatus(kubectl)).get(lost.name)?.ready === false, {
      timeoutMs: 180_000,
      intervalMs: 1000,
      what: `${lost.name} NotReady`,
    });
    t.diagnostic(`${lost.name} NotReady ${Date.now() - killedAt} ms after the loss`);
    await kubectl(['taint', 'node', lost.name, 'node.kubernetes.io/out-of-service=nodeshutdown:NoExecute']);
    await waitFor(async () => !(await exists(['pod', writer, '-n', ns])), {
      timeoutMs: 180_000,
      intervalMs: 1000,
      what: `the pod ${writer} of the lost node force-deleted`,
    });
    t.diagnostic(`its pod force-deleted ${Date.now() - killedAt} ms after the loss`);
    // The pod made again on node-1 (a live node), as its controller would; it keeps the volume
    // published while the checks below run.
    const reader = 'lossy-reader';
    const read = await podOutput(
      reader,
      n1(),
      'lossy',
      `${sha} && if [ -e /data/after ]; then echo after-present; else echo after-absent; fi`,
      2,
    );
    assert.deepEqual(read, [written, 'after-absent'], 'every committed byte; nothing uncommitted of the lost host');
    assert.deepEqual(await attachedTo('lossy'), [n1()], 'the VolumeAttachment moved to node-1');
    assert.equal((await volumeAttachments(await pvOf('lossy'))).length, 1, 'one VolumeAttachment of the volume');
    // One writer: the branch has one master, node-1's, and every use of it is there.
    const n1Id = (await (await nodeApi(1)).call('PoolInfo', {})).NodeId;
    assert.equal(await masterOf(api, branchId), n1Id);
    const uses = await api.call('BranchPublications', branchId);
    assert.equal(uses.Node, n1Id, 'the lost node’s mounts are gone from the volume’s uses');
    await deleteAndWait(cluster, ['pod', reader, '-n', ns]);

    // The lost node's leftovers: its machine removed (Node deleted, its kubelet's files, network
    // and pool gone), and its Dotmesh node removed as `dm cluster remove-node` does — without
    // --force, which it accepts only because the node masters no branch any more.
    await removeClusterNode(cluster, lost.name);
    const removal = await removeNode(api, { node: lostId, to: undefined, force: false });
    assert.deepEqual([removal.live, removal.moved, removal.forced], [false, [], false]);
    await deleteAndWait(cluster, ['volumesnapshot', 'lossy-snap', '-n', ns]);
    await deleteAndWait(cluster, ['pvc', 'lossy', '-n', ns]);
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
