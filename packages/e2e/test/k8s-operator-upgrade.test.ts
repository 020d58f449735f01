import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc/client';
import {
  Cleanup,
  claimAtData,
  type DocInstall,
  deleteAndWait,
  installDotmeshFromDoc,
  type Kubectl,
  podManifest,
  replaceInManifest,
  routeCheckRoot,
  skipUnless,
  type TestCluster,
  tagInCluster,
  testNamespace,
  useTestCluster,
  waitFor,
  waitForDotmesh,
} from '@dotmesh/testkit';
import {
  DIST,
  DOC,
  diagnosticsOnFailure,
  getJson,
  leaderPod,
  NS,
  operatorLog,
  type PodJson,
  ROLE,
  serverPods,
} from './k8s-operator-pods.ts';
import { type AdminApi, apply, hashInNewCommit, staticFlexVolume } from './k8s-volumes.ts';
import { watchPods } from './k8s-watch.ts';

/**
 * Upgrades and drain through the operator, on the run's shared test cluster (3 real kubelets),
 * with Dotmesh installed from the manifest docs/kubernetes.md gives users (testkit's
 * installDotmeshFromDoc lists its deviations). `npm run build` first.
 *
 * Drain: a Deployment's pod on one node writes to a dot through the FlexVolume driver;
 * `kubectl drain` of that node (no `--force`: the server pod's controller is its Node) completes,
 * and the watch of the pods shows the application pod deleted before the server pod (etcd
 * revisions of the DELETED events), the server pod evicted (its DisruptionTarget condition): its
 * preStop hook waited until the kubelet's unmount had ended the use. The operator's
 * PodDisruptionBudget keeps floor(0.75 × N) server pods.
 *
 * Rolling upgrade: a pod on every node appends checksummed records to its own dot; the
 * manifest applied again with another server image (the same build under another tag) makes
 * the operator replace the server pods one at a time: at every observation at least
 * floor(0.75 × N) are Ready; the operator leader is killed mid-upgrade and the standby finishes
 * it (its log shows the pods it replaced); afterwards every server runs the new image, every
 * record is in the writers' files and in a commit (sequence and hashes), and no branch changed
 * master. Then with one operator replica: killed mid-upgrade, its pod made again finishes it.
 */
describe('upgrades and drain through the operator (docs/kubernetes.md manifest)', {
  skip: skipUnless(['root', 'netns', 'k8s']),
  timeout: 30 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let kubectl: Kubectl;
  let apiKey: string;
  let install: DocInstall;
  const api = (ip: string): AdminApi => ({
    admin: new DotmeshClient({ url: `http://${ip}:32607/rpc`, user: 'admin', apiKey, timeoutMs: 60_000 }),
  });
  let failed = false;
  afterEach((t) => {
    if ('passed' in t && t.passed === false) failed = true;
  });
  after(() => cleanup.run());

  before(async () => {
    cluster = await useTestCluster(suite);
    kubectl = cluster.kubectl;
    const diagnostics = diagnosticsOnFailure(cluster, () => failed);
    install = await installDotmeshFromDoc(cluster, cleanup, { docFile: DOC, dist: DIST, onBeforeRemoval: diagnostics });
    apiKey = install.apiKey;
    await waitForDotmesh(cluster, cluster.nodes);
    for (const n of cluster.nodes) await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, n.ip);
  });

  /**
   * Waits until every server pod runs `ref` and is Ready, once a second counting the Ready ones
   * (each count at least floor(0.75 × N)); once the first has `ref` and others not yet, kills
   * the leading operator pod. Then: every pod replaced, another operator leads and its log
   * names server pods it replaced (it finished the job). Returns the killed pod.
   */
  async function upgradeKillingTheLeader(ref: string, oldPods: Map<string, PodJson>): Promise<PodJson> {
    const n = cluster.nodes.length;
    const minServing = Math.floor(0.75 * n);
    const ready = (p: PodJson) =>
      !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    const observed: number[] = [];
    let killed: PodJson | undefined;
    await waitFor(
      async () => {
        const all = (await getJson<{ items: PodJson[] }>(kubectl, ['get', 'pods', '-n', NS, '-l', ROLE])).items;
        const serving = all.filter(ready);
        observed.push(serving.length);
        const upgraded = serving.filter((p) => p.spec.containers[0]!.image === ref);
        if (!killed && upgraded.length >= 1 && upgraded.length < n) {
          killed = await leaderPod(kubectl);
          if (killed) await kubectl(['delete', 'pod', '-n', NS, killed.metadata.name, '--wait=false']);
        }
        return upgraded.length === n && all.length === n;
      },
      { timeoutMs: 900_000, intervalMs: 1000, what: `every server pod running ${ref} and Ready` },
    );
    assert.ok(killed, 'the leader was killed mid-upgrade');
    assert.ok(
      observed.every((c) => c >= minServing),
      `at least ${minServing} of ${n} server pods Ready at every observation: ${observed.join(' ')}`,
    );
    assert.ok(
      observed.some((c) => c < n),
      'the observations saw a server pod being replaced',
    );
    for (const [name, pod] of await serverPods(kubectl)) {
      assert.equal(pod.spec.containers[0]!.image, ref, name);
      assert.notEqual(pod.metadata.uid, oldPods.get(name)?.metadata.uid, `${name} was replaced`);
    }
    await waitFor(async () => (await leaderPod(kubectl)) !== undefined, { timeoutMs: 60_000, what: 'a leader' });
    const leader = (await leaderPod(kubectl))!;
    assert.notEqual(leader.metadata.name, killed.metadata.name, 'another operator leads');
    const replaced = (await operatorLog(kubectl, leader.metadata.name)).filter(
      (l) => l.msg === 'deleting server pod' && String(l.reason).includes('outdated'),
    );
    assert.ok(replaced.length >= 1, `the new leader replaced server pods: ${JSON.stringify(replaced)}`);
    return killed;
  }

  test('the operator keeps a PodDisruptionBudget of floor(0.75 × N) server pods; each server pod’s controller is its Node', async () => {
    const want = Math.floor(0.75 * cluster.nodes.length);
    await waitFor(
      async () =>
        (
          await kubectl(['get', 'pdb', '-n', NS, 'dotmesh-server', '-o', 'jsonpath={.spec.minAvailable}']).catch(() => ({
            stdout: '',
          }))
        ).stdout === String(want),
      { timeoutMs: 60_000, what: `the PDB dotmesh-server with minAvailable ${want}` },
    );
    const pdb = await getJson<{ spec: { selector: { matchLabels: Record<string, string> } } }>(kubectl, [
      'get',
      'pdb',
      '-n',
      NS,
      'dotmesh-server',
    ]);
    assert.deepEqual(pdb.spec.selector.matchLabels, { 'dotmesh.io/role': 'dotmesh-server' });
    for (const n of cluster.nodes) {
      const pod = await getJson<PodJson>(kubectl, ['get', 'pod', '-n', NS, `server-${n.name}`]);
      assert.deepEqual(
        pod.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.controller]),
        [['Node', n.name, true]],
      );
    }
  });

  test('kubectl drain of a node with a dot-using pod completes; the server pod leaves last, after the use ended', async () => {
    const node = cluster.nodes[1]!;
    const server = api(node.ip);
    const ns = await testNamespace(kubectl, suite, 'dmtest-drain');
    const dot = `drain-${randomBytes(3).toString('hex')}`;
    const pv = `drain-${ns}`;
    cleanup.add(() => deleteAndWait(cluster, ['pv', pv]), 'delete the static PV');
    cleanup.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claim');
    cleanup.add(() => deleteAndWait(cluster, ['pod', '--all', '-n', ns]), 'delete the pods while the servers run');
    cleanup.add(() => kubectl(['uncordon', node.name]), `uncordon ${node.name}`);
    cleanup.add(() => deleteAndWait(cluster, ['deployment', '--all', '-n', ns]), 'delete the Deployment first');
    await staticFlexVolume(cluster, { pv, namespace: ns, claim: 'data', dot });
    // A user's workload: a Deployment (drain evicts its pod without --force), on `node`.
    const script =
      'trap "exit 0" TERM; head -c 262144 /dev/urandom > /data/blob && sha256sum /data/blob | cut -d" " -f1 && echo written; sleep 3600 & wait';
    await apply(cluster, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'writer', namespace: ns },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'writer' } },
        template: {
          metadata: { labels: { app: 'writer' } },
          spec: {
            nodeSelector: { 'kubernetes.io/hostname': node.name },
            terminationGracePeriodSeconds: 10,
            containers: [
              {
                name: 'writer',
                image: cluster.images.busybox.ref,
                imagePullPolicy: 'Never',
                command: ['sh', '-c', script],
                volumeMounts: claimAtData('data').volumeMounts,
              },
            ],
            volumes: claimAtData('data').volumes,
          },
        },
      },
    });
    let logs = '';
    await waitFor(
      async () => {
        logs = (await kubectl(['logs', '-n', ns, 'deployment/writer']).catch(() => ({ stdout: '' }))).stdout;
        return logs.includes('written');
      },
      { timeoutMs: 180_000, intervalMs: 1000, what: 'the writer pod wrote its data' },
    );
    const written = logs.trim().split('\n')[0]!;
    const uses = await server.admin.call('NodeUses', {});
    assert.equal(uses.Uses.length, 1, JSON.stringify(uses));
    assert.equal(uses.Uses[0]!.Kind, 'mount');
    assert.ok(uses.Uses[0]!.Target.startsWith(join(node.paths.kubeletRootDir, 'pods')), uses.Uses[0]!.Target);
    const [writer] = (await getJson<{ items: PodJson[] }>(kubectl, ['get', 'pods', '-n', ns, '-l', 'app=writer'])).items;
    const serverPod = await getJson<PodJson>(kubectl, ['get', 'pod', '-n', NS, `server-${node.name}`]);

    const watch = await watchPods(cluster, [ns, NS]);
    try {
      await kubectl(['drain', node.name, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=300s'], {
        timeoutMs: 320_000,
      });
    } finally {
      await watch.stop();
    }
    const deleted = (uid: string) => watch.events.find((e) => e.type === 'DELETED' && e.uid === uid);
    const appGone = deleted(writer!.metadata.uid);
    const serverGone = deleted(serverPod.metadata.uid);
    assert.ok(appGone, 'the writer pod was deleted during the drain');
    assert.ok(serverGone, 'the server pod was deleted during the drain');
    assert.ok(
      appGone.revision < serverGone.revision,
      `the writer pod left (revision ${appGone.revision}) before the server pod (revision ${serverGone.revision})`,
    );
    assert.ok(
      watch.events.some(
        (e) => e.uid === serverPod.metadata.uid && e.conditions.some((c) => c.type === 'DisruptionTarget' && c.status === 'True'),
      ),
      'the server pod was evicted (DisruptionTarget)',
    );

    // The old server answered the kubelet's unmount of the writer's volume, then stopped (its
    // log, which the pool directory keeps across pods, in order).
    const log = (await readFile(join(install.pools, node.name, 'server', 'dotmesh-server.log'), 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; action?: string; request?: { Target?: string } });
    const target = uses.Uses[0]!.Target;
    const unmounted = log.findIndex((l) => l.msg === 'FlexVolume call' && l.action === 'unmount' && l.request?.Target === target);
    const stopped = log.findIndex((l, i) => i > unmounted && l.msg === 'stopping (the pool stays mounted)');
    assert.ok(unmounted >= 0, `the server on ${node.name} answered the unmount of ${target}`);
    assert.ok(stopped > unmounted, 'the server stopped after it answered the unmount');

    // The operator puts the node's server back (the node is still selected); the kubelet's
    // unmount reached the old one before it stopped: no use is left, and the data is in a commit.
    await waitForDotmesh(cluster, [node]);
    assert.deepEqual((await server.admin.call('NodeUses', {})).Uses, []);
    assert.equal(await hashInNewCommit(server, 'admin', dot, 'blob'), written);
  });
  test('rolling upgrade to a new server image while pods write: floor(0.75 × N) always Ready, the leader killed midway, no record lost, no master changed', async () => {
    const ns = await testNamespace(kubectl, suite, 'dmtest-upgrade');
    const tag = randomBytes(3).toString('hex');
    const writers = cluster.nodes.map((node, i) => ({
      node,
      dot: `upg-${i}-${tag}`,
      pv: `upg-${i}-${ns}`,
      claim: `data-${i}`,
      pod: `writer-${i}`,
      salt: randomBytes(4).toString('hex'),
    }));
    for (const w of writers) cleanup.add(() => deleteAndWait(cluster, ['pv', w.pv]), `delete the PV ${w.pv}`);
    cleanup.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claims');
    cleanup.add(() => deleteAndWait(cluster, ['pod', '--all', '-n', ns]), 'delete the writers while the servers run');
    // Record i is "i <first 16 hex of sha256("i-<salt>\n")>", appended every 0.2 s until /data/stop.
    const script = (salt: string) =>
      [
        'trap "exit 0" TERM',
        'i=0',
        'while [ ! -e /data/stop ]; do',
        '  i=$((i+1))',
        `  echo "$i $(echo "$i-${salt}" | sha256sum | cut -c1-16)" >> /data/records`,
        '  sleep 0.2',
        'done',
        'sha256sum /data/records | cut -d" " -f1 > /data/final',
        'sleep 3600 & wait',
      ].join('\n');
    for (const w of writers) {
      await staticFlexVolume(cluster, { pv: w.pv, namespace: ns, claim: w.claim, dot: w.dot });
      await kubectl(['apply', '-f', '-'], {
        input: podManifest({
          name: w.pod,
          namespace: ns,
          node: w.node.name,
          image: cluster.images.busybox.ref,
          command: ['sh', '-c', script(w.salt)],
          ...claimAtData(w.claim),
        }),
      });
    }
    const exec = async (pod: string, cmd: string) =>
      (await kubectl(['exec', '-n', ns, pod, '--', 'sh', '-c', cmd])).stdout.trim();
    const records = async (pod: string) => Number(await exec(pod, 'wc -l < /data/records'));
    await Promise.all(
      writers.map((w) =>
        waitFor(async () => (await records(w.pod).catch(() => 0)) > 0, { timeoutMs: 180_000, what: `${w.pod} writing` }),
      ),
    );
    const via = api(cluster.nodes[0]!.ip);
    const master = async (dot: string) => {
      const fsId = await via.admin.call('Lookup', { Namespace: 'admin', Name: dot, Branch: '' });
      return (await via.admin.call('BranchById', fsId)).Master;
    };
    const mastersBefore = await Promise.all(writers.map((w) => master(w.dot)));
    const countsBefore = await Promise.all(writers.map((w) => records(w.pod)));

    // The same build under another name: the "new version" (no registry, no rebuild).
    const oldRef = install.serverImage.ref;
    const next = await tagInCluster(cluster, install.serverImage, `${oldRef.split(':')[0]}:upgrade-${tag}`, suite);
    const oldPods = await serverPods(kubectl);
    assert.ok([...oldPods.values()].every((p) => p.spec.containers[0]!.image === oldRef));
    await kubectl(['apply', '-f', '-'], { input: replaceInManifest(install.manifest, { [oldRef]: next.ref }) });

    await upgradeKillingTheLeader(next.ref, oldPods);

    // The writers wrote throughout; every record is there, in order, with its hash, and in a commit
    // (the writers checked at once: each on its own node and dot).
    const checkWriter = async (w: (typeof writers)[number], i: number) => {
      await exec(w.pod, 'touch /data/stop');
      let final = '';
      await waitFor(
        async () => {
          final = await exec(w.pod, 'cat /data/final 2>/dev/null || true');
          return /^[0-9a-f]{64}$/.test(final);
        },
        { timeoutMs: 60_000, what: `${w.pod} stopped writing` },
      );
      const text = await exec(w.pod, 'cat /data/records');
      assert.equal(createHash('sha256').update(`${text}\n`).digest('hex'), final, `${w.pod}: the file read is the file hashed`);
      const lines = text.split('\n');
      assert.ok(
        lines.length > countsBefore[i]!,
        `${w.pod} kept writing through the upgrade (${countsBefore[i]} → ${lines.length})`,
      );
      lines.forEach((line, k) => {
        const want = `${k + 1} ${createHash('sha256')
          .update(`${k + 1}-${w.salt}\n`)
          .digest('hex')
          .slice(0, 16)}`;
        assert.equal(line, want, `${w.pod} record ${k + 1}`);
      });
      assert.equal(
        await hashInNewCommit(api(w.node.ip), 'admin', w.dot, 'records'),
        final,
        `${w.dot}: a commit holds every record`,
      );
    };
    await Promise.all(writers.map((w, i) => checkWriter(w, i)));
    assert.deepEqual(await Promise.all(writers.map((w) => master(w.dot))), mastersBefore, 'no branch changed master');
  });
  test('a single operator killed mid-upgrade finishes it when its pod comes back', async () => {
    // One replica (the manifest applied with replicas 1: a deviation for this test), then
    // another "new version": the Deployment makes the operator pod again after it is killed.
    const repo = install.serverImage.ref.split(':')[0];
    const third = await tagInCluster(cluster, install.serverImage, `${repo}:again-${randomBytes(3).toString('hex')}`, suite);
    const oldPods = await serverPods(kubectl);
    const oneReplica = replaceInManifest(install.manifest, {
      'replicas: 2': 'replicas: 1',
      [install.serverImage.ref]: third.ref,
    });
    await kubectl(['apply', '-f', '-'], { input: oneReplica });
    const killed = await upgradeKillingTheLeader(third.ref, oldPods);
    const operators = (
      await getJson<{ items: PodJson[] }>(kubectl, ['get', 'pods', '-n', NS, '-l', 'app=dotmesh-operator'])
    ).items.filter((p) => !p.metadata.deletionTimestamp);
    assert.equal(operators.length, 1, 'one operator pod');
    assert.notEqual(operators[0]!.metadata.uid, killed.metadata.uid, 'the operator pod that finished is the one made again');
  });
});
