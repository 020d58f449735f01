import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc/client';
import {
  addClusterNode,
  Cleanup,
  type CloudVolumes,
  claimAtData,
  type DocInstall,
  deleteAndWait,
  deletePoolVolumes,
  installCloudVolumes,
  installDotmeshFromDoc,
  podManifest,
  removeClusterNode,
  routeCheckRoot,
  skipUnless,
  type TestCluster,
  type TestClusterNode,
  testNamespace,
  useTestCluster,
  waitFor,
} from '@dotmesh/testkit';
import { DIST, DOC, diagnosticsOnFailure, getJson, NS, type PodJson, serverPods } from './k8s-operator-pods.ts';
import { dotClaim, eventMessages, scriptWithClaim } from './k8s-volumes.ts';

/**
 * `storageMode: pvcPerNode` on three nodes of this suite's own (two in zone-a, one in zone-b,
 * added to the run's shared test cluster and selected by a label, so that the shared nodes 0–2,
 * which other tests use, are never drained or removed), their pools on the test-only "cloud"
 * volumes (packages/cloud-csi): every node gets a pool PVC of its own zone, tied to it by
 * `dotmesh.io/node`, and its server pod keeps the pool file and the server's state (config,
 * etcd data) on it; a dot written by a pod and committed there comes back with every commit and
 * the same bytes when the node's server pod is deleted and made again from the same PVC, and a
 * pod using the dot runs again; a pool PVC that no node can reach (a zone without nodes) is left
 * unadopted with an Event saying so; raising `pvcPerNode.pvSizePerNode` grows every held pool
 * PVC (csi-resizer, then the kubelet's online NodeExpandVolume) and every pool online (`df` in a
 * pod using a dot on each node shows it), with no server pod replaced, a running pod untouched
 * and its dot's bytes the same; and every node, recycled one by one in surge order (a
 * replacement added in its zone, the old one drained with --force, its Node deleted and the
 * machine gone: docs/kubernetes.md, "Surviving node upgrades"), hands its pool PVC to its
 * replacement, whose server serves the pool at its new address as the same Dotmesh node; after
 * each step every dot written and committed on every node has every commit and the same bytes
 * (read by a pod on the node that now holds it), and etcd has its three voting members at the
 * current nodes' addresses. Then the same install's three current nodes are replaced at once
 * (docs/kubernetes.md, "Replacing every node at once"): a dot a pod wrote and committed on each,
 * three replacements added in the same zones, the three old nodes drained together, their Nodes
 * deleted and machines removed. Every etcd member's address is then gone: the servers report
 * their members stranded, the operator records one recovery (the ConfigMap
 * dotmesh-etcd-recovery, an `EtcdRecovery` Event), one pool's member restarts the cluster and the
 * two others join it again. Checked: every pool adopted by the replacement of its zone and served
 * as the same Dotmesh node; every dot's commits; the bytes a pod reads (hash); etcd with three
 * voting members at the new addresses; a new commit works; the recovery's record gone once every
 * server serves. The nodes are this suite's own and removed at its end.
 */
const POOL_ROLE = 'dotmesh.io/role=dotmesh-pvc';
const SHA = 'sha256sum /data/blob | cut -d" " -f1';
/** The label that selects this suite's nodes (the ConfigMap's nodeSelector). */
const SELECT = 'dmtest.dotmesh.io/pvc-per-node';
/** The zone of each of the suite's nodes, and of each one's replacement. */
const ZONES = ['zone-a', 'zone-a', 'zone-b'] as const;

interface PvcJson {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { volumeName?: string; resources?: { requests?: { storage?: string } } };
  status?: { phase?: string; capacity?: { storage?: string } };
}

describe('storageMode pvcPerNode: each node’s pool on a cloud volume PVC', {
  skip: skipUnless(['root', 'netns', 'losetup', 'k8s']),
  timeout: 45 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let cloud: CloudVolumes;
  let install: DocInstall | undefined;
  /** The nodes with a pool, this suite's own (zones: ZONES); the recycle replaces them one by one, then all at once. */
  let poolNodes: TestClusterNode[];
  /** Removes the nodes this suite added, once Dotmesh and the pools are gone. */
  const extraNodes = new Cleanup();
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
  const serverPodOf = async (node: string) =>
    [...(await serverPods(cluster.kubectl)).values()].find((p) => p.metadata.labels?.['dotmesh.io/node'] === node);
  /** Runs `script` in a busybox pod on `node` with the dot's claim at /data; its output. */
  const inPod = (node: TestClusterNode, dot: string, name: string, script: string) =>
    scriptWithClaim(cluster, { namespace: ns, node, pod: name, claim: dot, script, timeoutMs: 300_000 });
  /** The nodes named by any VolumeAttachment (attached or not yet detached). */
  const nodesWithVolumeAttachments = async () =>
    new Set(
      (
        await cluster.kubectl(['get', 'volumeattachments', '-o', 'jsonpath={range .items[*]}{.spec.nodeName}{"\\n"}{end}'])
      ).stdout.split('\n'),
    );
  /** The messages of the Events `reason` on the object `name` of the Dotmesh namespace. */
  const eventsOf = (name: string, reason: string) => eventMessages(cluster, NS, `involvedObject.name=${name},reason=${reason}`);
  /** A node of this suite added in `zone` (labelled for the nodeSelector), with the cloud driver's node plugin. */
  const addPoolNode = async (zone: string, joinAfter?: Promise<unknown>) => {
    const node = await addClusterNode(cluster, {
      cleanup: extraNodes,
      labels: { [SELECT]: 'yes' },
      ...(install ? { images: install.images } : {}),
      ...(joinAfter ? { joinAfter } : {}),
    });
    await cloud.addNode(node, zone);
    return node;
  };
  /**
   * A node of this suite in `zone` built ahead (containerd, images) of the moment it may join:
   * its kubelet starts at `join()`, which returns the node. A join never made is cancelled by
   * the suite's cleanup (the node is then removed unstarted).
   */
  const buildAhead = (zone: string) => {
    const gate = Promise.withResolvers<void>();
    cleanup.add(() => gate.reject(new Error('the suite ended before this node could join')), 'cancel a node built ahead');
    const node = addPoolNode(zone, gate.promise);
    node.catch(() => undefined); // awaited at join(); one never joined is left to the cleanup
    return {
      join: () => {
        gate.resolve();
        return node;
      },
    };
  };
  /** The first replacement of the recycle, built while the tests before it run. */
  let recycleAhead: ReturnType<typeof buildAhead> | undefined;
  /** The three replacements of the last test, built during the recycle's last step. */
  let replaceAllAhead: ReturnType<typeof buildAhead>[] | undefined;
  /** A new dot: a claim `<prefix>-<hex>` of the `dotmesh` class, for a pod on `node`. */
  const newDot = async (node: TestClusterNode, prefix: string) => {
    await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, node.ip);
    const dot = `${prefix}-${randomBytes(3).toString('hex')}`;
    await dotClaim(cluster, ns, dot);
    cleanup.add(() => deleteAndWait(cluster, ['pvc', dot, '-n', ns]), 'delete the dot claim');
    return dot;
  };
  /** A new dot written by a pod (`pod`) on `node` and committed there. */
  const writeAndCommit = async (node: TestClusterNode, message: string, pod = 'writer') => {
    const dot = await newDot(node, 'pvcmode');
    const written = await inPod(node, dot, pod, `head -c 2097152 /dev/urandom > /data/blob && ${SHA}`);
    const server = api(node.ip);
    const commit = await server.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: message, Metadata: {} });
    const commits = await server.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' });
    return { dot, written, commit, commits };
  };

  before(async () => {
    cluster = await useTestCluster(suite);
    // btrfs disks: they grow online here (ext4 would need CAP_SYS_RESOURCE: cloud-volumes.ts).
    cloud = await installCloudVolumes({
      cluster,
      cleanup,
      zones: ['zone-a', 'zone-a', 'zone-b'],
      storageClass: 'dmtest-pool',
      fsType: 'btrfs',
    });
    cleanup.add(() => extraNodes.run(), 'remove the nodes the suite added');
    // There before the install, so that the first install makes their PVCs at once (a node added
    // later waits for a released pool first: the recycle test below).
    poolNodes = await Promise.all(ZONES.map((zone) => addPoolNode(zone)));
    const diagnostics = diagnosticsOnFailure(cluster, () => failed, [
      ['-l', 'dotmesh.io/role=dotmesh-server', '-c', 'dotmesh-server', '--prefix'],
    ]);
    // The product's images go onto the suite's nodes too (the install imports them into `nodes`).
    install = await installDotmeshFromDoc({ ...cluster, nodes: [...cluster.nodes, ...poolNodes] }, cleanup, {
      docFile: DOC,
      dist: DIST,
      onBeforeRemoval: async (i) => {
        if (failed) {
          console.error((await cluster.kubectl(['get', 'pvc,pv,volumeattachments,configmap', '-A', '-o', 'wide'])).stdout);
          console.error((await cluster.kubectl(['get', 'events', '-n', NS])).stdout);
        }
        await diagnostics(i);
      },
      config: {
        nodeSelector: `${SELECT}=yes`,
        storageMode: 'pvcPerNode',
        'pvcPerNode.storageClass': cloud.storageClass,
        'pvcPerNode.pvSizePerNode': '1G',
        // A deviation from the default (120 s): how long a moved etcd member waits for its old
        // peers to answer, after which it reports itself stranded (most of the time, to the
        // recovery of the last test). Safe here: in the recycle two members always run, so the
        // wait ends with the change, not the timeout (the wait for the pool's earlier holder is
        // not counted in it); in the replacement of every node at once the drains stop every
        // old server pod, and so every etcd member, before any replacement's pod starts, so no
        // member can ever answer and the wait cannot end otherwise; and the operator decides a
        // recovery only once every voting member reported and no server serves.
        'pvcPerNode.etcdMoveWaitSeconds': '15',
      },
    });
    apiKey = install.apiKey;
    // Before the manifest goes (LIFO): the operator first (it would make the PVCs again), then the
    // server pods (they let go of their pools), then the pool PVCs and, through the cloud
    // driver, their disks — before the driver itself is stopped.
    cleanup.add(
      () => deletePoolVolumes(cluster, cloud.storageClass, { pvs: ['dmtest-stray-pool'] }),
      'delete the pool PVCs and their disks',
    );
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-pvcmode');
    recycleAhead = buildAhead(ZONES[0]);
  });

  test('every node gets a pool PVC of its zone, tied to it, and its server pod keeps the pool and its state there', async () => {
    const nodes = poolNodes.map((n) => n.name);
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
    const node = poolNodes[0]!;
    const { dot, written, commit, commits } = await writeAndCommit(node, 'on the pool PVC');
    const old = (await serverPodOf(node.name))!;
    await deleteAndWait(cluster, ['pod', old.metadata.name, '-n', NS]);
    await waitFor(
      async () => {
        const back = await serverPodOf(node.name);
        return back !== undefined && back.metadata.uid !== old.metadata.uid && ready(back);
      },
      { timeoutMs: 300_000, intervalMs: 1000, what: `the server pod of ${node.name} made again and Ready` },
    );
    const again = (await serverPodOf(node.name))!;
    assert.equal(again.metadata.name, old.metadata.name, 'the same PVC');
    const after = await api(node.ip).call('Commits', { Namespace: 'admin', Name: dot, Branch: '' });
    assert.deepEqual(after, commits, 'every commit is there');
    assert.ok(after.some((c) => c.Id === commit));
    assert.equal(await inPod(node, dot, 'reader', SHA), written, 'a pod using the dot runs again and reads the same bytes');
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
    await waitFor(async () => (await eventsOf('pvc-00000000000strayc', 'PoolVolumeUnreachable')).includes('zone-c'), {
      timeoutMs: 120_000,
      intervalMs: 1000,
      what: 'a PoolVolumeUnreachable Event naming zone-c',
    });
    const stray = (await poolClaims()).find((c) => c.metadata.name === 'pvc-00000000000strayc')!;
    assert.equal(stray.metadata.annotations?.['dotmesh.io/node'], undefined, 'no node adopted it');
    assert.equal((await poolClaims()).length, poolNodes.length + 1, 'no PVC was made or taken for it');
  });
  test('raising pvSizePerNode grows every pool PVC and every pool online: df in a pod on each node shows it, a running pod and its data untouched', async (t) => {
    const MiB = 2 ** 20;
    // A pod on each node using a dot of its own, running throughout; /data is the dot, so its
    // df is the size of the node's pool.
    const users = await Promise.all(
      poolNodes.map(async (node, i) => {
        const dot = await newDot(node, `grow-${i}`);
        const pod = `grow-user-${i}`;
        await cluster.kubectl(['apply', '-f', '-'], {
          input: podManifest({
            name: pod,
            namespace: ns,
            node: node.name,
            image: cluster.images.busybox.ref,
            command: ['sh', '-c', 'head -c 1048576 /dev/urandom > /data/blob && exec sleep 3600'],
            ...claimAtData(dot),
          }),
        });
        cleanup.add(() => deleteAndWait(cluster, ['pod', pod, '-n', ns]), 'delete the pod using the dot');
        return { node, dot, pod };
      }),
    );
    const exec = async (pod: string, script: string) =>
      (await cluster.kubectl(['exec', '-n', ns, pod, '--', 'sh', '-c', script])).stdout.trim();
    const dfBytes = async (pod: string) => Number(await exec(pod, "df -Pk /data | tail -n 1 | awk '{print $2}'")) * 1024;
    const podState = async (pod: string) => {
      const p = await getJson<PodJson & { status?: { containerStatuses?: { restartCount: number }[] } }>(cluster.kubectl, [
        'get',
        'pod',
        pod,
        '-n',
        ns,
      ]);
      return { uid: p.metadata.uid, restarts: p.status?.containerStatuses?.[0]?.restartCount, ready: ready(p) };
    };
    await waitFor(async () => (await Promise.all(users.map((u) => podState(u.pod)))).every((s) => s.ready), {
      timeoutMs: 300_000,
      intervalMs: 2000,
      what: 'a Ready pod using a dot on every node',
    });
    const before = await Promise.all(
      users.map(async (u) => ({
        ...u,
        df: await dfBytes(u.pod),
        hash: await exec(u.pod, SHA),
        state: await podState(u.pod),
      })),
    );
    const serversBefore = new Map(
      [...(await serverPods(cluster.kubectl)).values()].map((p) => [p.metadata.name, p.metadata.uid]),
    );
    const held = (await poolClaims()).filter((c) => c.metadata.annotations?.['dotmesh.io/node'] !== undefined);
    assert.equal(held.length, poolNodes.length);

    const setSize = (size: string) =>
      cluster.kubectl([
        'patch',
        'configmap',
        'configuration',
        '-n',
        NS,
        '--type=merge',
        '-p',
        JSON.stringify({ data: { 'pvcPerNode.pvSizePerNode': size } }),
      ]);
    const t0 = Date.now();
    await setSize('1536M');
    await waitFor(
      async () => {
        const now = new Map((await poolClaims()).map((c) => [c.metadata.name, c]));
        // The kubelet copies the PV's capacity, which the resizer writes as a binary Quantity.
        return held.every((c) =>
          ['1536Mi', String(1536 * MiB)].includes(now.get(c.metadata.name)?.status?.capacity?.storage ?? ''),
        );
      },
      { timeoutMs: 240_000, intervalMs: 1000, what: 'every held pool PVC at 1536 MiB (status.capacity)' },
    );
    t.diagnostic(`every pool PVC grown in ${Date.now() - t0} ms`);
    await waitFor(
      async () => {
        const sizes = await Promise.all(before.map((b) => dfBytes(b.pod)));
        return sizes.every((size, i) => size >= before[i]!.df + 400 * MiB);
      },
      { timeoutMs: 120_000, intervalMs: 1000, what: 'df in the pod on every node showing its pool ~480 MiB bigger' },
    );
    t.diagnostic(`every pool grown (df in the pods) ${Date.now() - t0} ms after the ConfigMap changed`);
    for (const b of before) {
      assert.deepEqual(await podState(b.pod), b.state, `the pod on ${b.node.name} kept running (same uid, no restart)`);
      assert.equal(await exec(b.pod, SHA), b.hash, `the dot on ${b.node.name} has the same bytes`);
      assert.equal(await exec(b.pod, 'echo more > /data/after && cat /data/after'), 'more', 'the dot is writable');
    }
    const serversAfter = new Map([...(await serverPods(cluster.kubectl)).values()].map((p) => [p.metadata.name, p.metadata.uid]));
    assert.deepEqual(serversAfter, serversBefore, 'no server pod was replaced (the pools grew online)');
    // Lowered again: refused (PVCs do not shrink), with an Event on each PVC; nothing changes.
    await setSize('1G');
    const claim = held[0]!.metadata.name;
    await waitFor(async () => (await eventsOf(claim, 'PoolVolumeShrinkRefused')).includes('PVCs do not shrink'), {
      timeoutMs: 60_000,
      intervalMs: 1000,
      what: `a PoolVolumeShrinkRefused Event on ${claim}`,
    });
    const requests = (await poolClaims()).filter((c) => held.some((h) => h.metadata.name === c.metadata.name));
    assert.ok(
      requests.every((c) => c.spec.resources?.requests?.storage === String(1536 * MiB)),
      'no PVC shrank',
    );
    await setSize('1536M');
    // The recycle below drains every node: without these pods.
    await Promise.all(users.map((u) => deleteAndWait(cluster, ['pod', u.pod, '-n', ns])));
  });

  test('every node recycled one by one in surge order hands its pool PVC to its replacement: after each step every commit and byte of every node’s dots is there and pods using them run again', async (t) => {
    // The replacement of the first node, built while the tests before this one ran and joining
    // now, while the dots are written (a new node waits for a pool while it is under 2 minutes
    // old); each next one is made during the step before and joins once that step's
    // replacement holds its pool (so it cannot take that pool).
    assert.equal(cloud.zones[poolNodes[0]!.name], ZONES[0]);
    let adding = recycleAhead?.join() ?? addPoolNode(ZONES[0]);
    // Awaited in its step; a step that fails first leaves it to the suite's cleanup.
    adding.catch(() => undefined);
    const joins: PromiseWithResolvers<void>[] = [];
    t.after(() => {
      for (const j of joins) j.reject(new Error('the recycle ended before this node could join'));
    });
    /** Each dot, written and committed on one node: the node holding its pool now, and what it must hold. */
    const dots = await Promise.all(
      poolNodes.map(async (node, i) => {
        const { dot, written, commit, commits } = await writeAndCommit(node, `on ${node.name} before the recycle`, `writer-${i}`);
        const { NodeId: nodeId } = await api(node.ip).call('PoolInfo', {});
        assert.ok(commits.some((c) => c.Id === commit));
        return { dot, written, commits, nodeId, holder: node };
      }),
    );
    const claimsBefore = (await poolClaims()).length;
    /** Every dot's commits on the node holding it, its bytes read by a pod there, and etcd's members. */
    const checkEveryDot = async (step: number) => {
      for (const d of dots) {
        assert.deepEqual(
          await api(d.holder.ip).call('Commits', { Namespace: 'admin', Name: d.dot, Branch: '' }),
          d.commits,
          `every commit of ${d.dot} on ${d.holder.name} after step ${step}`,
        );
      }
      const read = await Promise.all(dots.map((d, i) => inPod(d.holder, d.dot, `reader-${step}-${i}`, SHA)));
      assert.deepEqual(
        read,
        dots.map((d) => d.written),
        `after step ${step} a pod using each dot runs on the node holding it and reads the same bytes`,
      );
      const { Members } = await api(dots[0]!.holder.ip).call('EtcdMembers', {});
      assert.deepEqual(
        Members.map((m) => [m.Learner, new URL(m.PeerUrls[0]!).hostname]).sort(),
        poolNodes.map((n) => [false, n.ip]).sort(),
        `after step ${step} etcd has three voting members, at the current nodes' addresses`,
      );
    };
    for (let i = 0; i < poolNodes.length; i++) {
      const old = poolNodes[i]!;
      const zone = cloud.zones[old.name]!;
      const pvc = (await poolClaims()).find((c) => c.metadata.annotations?.['dotmesh.io/node'] === old.name)!;
      // 1. The replacement, added in the same zone: Ready, it waits for a pool.
      let t0 = Date.now();
      const fresh = await adding;
      assert.equal(cloud.zones[fresh.name], zone);
      t.diagnostic(`step ${i}: replacement ${fresh.name} of ${old.name} Ready (${Date.now() - t0} ms waited for it)`);
      const next = poolNodes[i + 1];
      const joined = next === undefined ? undefined : Promise.withResolvers<void>();
      if (next !== undefined && joined !== undefined) {
        joins.push(joined);
        adding = addPoolNode(cloud.zones[next.name]!, joined.promise);
        adding.catch(() => undefined);
      }
      // The last step: the next test's three replacements are built meanwhile (they join there).
      if (next === undefined) replaceAllAhead = ZONES.map((zone) => buildAhead(zone));
      // 2. Drain the old node: its server pod is evicted and not made again there (it is being
      // replaced), so its pool is unmounted and its disk detached.
      t0 = Date.now();
      await cluster.kubectl(['drain', old.name, '--ignore-daemonsets', '--delete-emptydir-data', '--force', '--timeout=300s'], {
        timeoutMs: 320_000,
      });
      await waitFor(async () => !(await nodesWithVolumeAttachments()).has(old.name), {
        timeoutMs: 180_000,
        intervalMs: 1000,
        what: `the disks of ${old.name} detached`,
      });
      t.diagnostic(`step ${i}: ${old.name} drained and its disk detached in ${Date.now() - t0} ms`);
      assert.equal(await serverPodOf(old.name), undefined, 'no server pod is made again on the node being replaced');
      assert.equal(await serverPodOf(fresh.name), undefined, 'the replacement waits for the pool');
      // 3. Delete the Node and the machine.
      await cluster.kubectl(['delete', 'node', old.name]);
      await removeClusterNode(cluster, old.name);
      // 4. The replacement adopts the pool PVC and serves it.
      t0 = Date.now();
      await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, fresh.ip);
      await waitFor(
        async () => {
          const p = await serverPodOf(fresh.name);
          return p !== undefined && ready(p);
        },
        { timeoutMs: 300_000, intervalMs: 1000, what: `the server pod of ${fresh.name} Ready` },
      );
      t.diagnostic(`step ${i}: old Node deleted to the replacement's server Ready: ${Date.now() - t0} ms`);
      poolNodes[i] = fresh;
      // The next replacement joins while this step is checked (every pool is held: it waits).
      joined?.resolve();
      const adopted = (await poolClaims()).find((c) => c.metadata.name === pvc.metadata.name)!;
      assert.equal(adopted.metadata.annotations?.['dotmesh.io/node'], fresh.name, 'the old pool PVC is the replacement’s');
      assert.equal((await poolClaims()).length, claimsBefore, 'no PVC was made');
      assert.equal((await serverPodOf(fresh.name))!.metadata.name, `server-pvc-${pvc.metadata.name.slice(-4)}-${fresh.name}`);
      const moved = dots.find((d) => d.holder === old)!;
      assert.equal(
        (await api(fresh.ip).call('PoolInfo', {})).NodeId,
        moved.nodeId,
        'the same Dotmesh node (its pool) at the new address',
      );
      moved.holder = fresh;
      await checkEveryDot(i);
      // The moved node takes writes: a new commit, which the later steps check too.
      const server = api(fresh.ip);
      const commit = await server.call('Commit', {
        Namespace: 'admin',
        Name: moved.dot,
        Branch: '',
        Message: `after step ${i}`,
        Metadata: {},
      });
      moved.commits = await server.call('Commits', { Namespace: 'admin', Name: moved.dot, Branch: '' });
      assert.ok(moved.commits.some((c) => c.Id === commit));
    }
  });

  test('every dot, commit and etcd member comes back when the three current nodes are replaced together', async (t) => {
    const olds = [...poolNodes];
    const zones = olds.map((n) => cloud.zones[n.name]!);
    // The three replacements (built during the recycle's last step) join while the dots are
    // written: a new node waits for a pool while it is under 2 minutes old, and once the old
    // nodes are cordoned (right after the writes) for theirs.
    const adding = Promise.all(
      zones.map((zone, i) => (replaceAllAhead && zone === ZONES[i] ? replaceAllAhead[i]!.join() : addPoolNode(zone))),
    );
    adding.catch(() => undefined); // awaited below; a failed write leaves it to the cleanup
    // A dot on each node, written by a pod there and committed (the three at once).
    const dots = await Promise.all(
      olds.map(async (node, i) => {
        const dot = await newDot(node, 'replall');
        const written = await inPod(node, dot, `all-writer-${i}`, `head -c 1048576 /dev/urandom > /data/blob && ${SHA}`);
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
    await waitFor(async () => ![...(await nodesWithVolumeAttachments())].some((n) => oldNames.has(n)), {
      timeoutMs: 240_000,
      intervalMs: 1000,
      what: 'the old nodes’ disks detached',
    });
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
      { timeoutMs: 900_000, intervalMs: 1000, what: 'an EtcdRecovery Event' },
    );
    t.diagnostic(`recovery decided ${Date.now() - t0} ms after the old Nodes were deleted`);
    await waitFor(
      async () => {
        const pods = await Promise.all(fresh.map((n) => serverPodOf(n.name)));
        return pods.every((p) => p !== undefined && ready(p));
      },
      { timeoutMs: 900_000, intervalMs: 1000, what: 'a Ready server pod on every replacement' },
    );
    t.diagnostic(`every server Ready ${Date.now() - t0} ms after the old Nodes were deleted`);
    poolNodes = fresh;

    // Every pool served by the replacement of its zone, as the same node, with every commit and the same bytes.
    const byNodeId = new Map<string, TestClusterNode>();
    for (const n of fresh) byNodeId.set((await api(n.ip).call('PoolInfo', {})).NodeId, n);
    assert.deepEqual([...byNodeId.keys()].sort(), dots.map((d) => d.nodeId).sort(), 'the three pools, each on one replacement');
    for (const [i, d] of dots.entries()) {
      const node = byNodeId.get(d.nodeId)!;
      assert.equal(cloud.zones[node.name], d.zone, `the pool of ${d.dot} in its zone`);
      assert.deepEqual(await api(node.ip).call('Commits', { Namespace: 'admin', Name: d.dot, Branch: '' }), d.commits);
      assert.equal(await inPod(node, d.dot, `all-reader-${i}`, SHA), d.written, `a pod reads the bytes of ${d.dot}`);
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
