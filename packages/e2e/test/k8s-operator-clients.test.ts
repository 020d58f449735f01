import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc/client';
import { publicKeyPin } from '@dotmesh/rpc/tls';
import {
  Cleanup,
  claimAtData,
  csiClaim,
  type DmResult,
  type DocInstall,
  deleteAndWait,
  dotCommitSource,
  freePorts,
  installDotmeshCsiFromDoc,
  installDotmeshFromDoc,
  type Kubectl,
  makeTempDir,
  podManifest,
  routeCheckRoot,
  runDm,
  runPodToCompletion,
  SERVER_BUNDLE,
  type ServerProcess,
  skipUnless,
  startServerProcess,
  type TestCluster,
  testNamespace,
  useTestCluster,
  waitFor,
  waitForDotmesh,
  waitForDotmeshCsi,
} from '@dotmesh/testkit';
import {
  DIST,
  DOC,
  diagnosticsOnFailure,
  getJson,
  leaderPod,
  NS,
  operatorLog,
  operatorPods,
  serverPods,
} from './k8s-operator-pods.ts';
import {
  apply,
  dotExists,
  expectClaimsRefused,
  pvcWarnings,
  type RefusedClaim,
  waitUnused,
  writeRandomScript,
} from './k8s-volumes.ts';

/**
 * `dm` from a workstation, as docs/kubernetes.md ("Using dm from a workstation") tells users, on
 * the run's shared test cluster with the documented install: the root namespace is the
 * workstation (every node address is route-checked through the test bridge first). The built
 * `dm` (its own HOME under the test root) reads the API key from the Secret `dotmesh` and the CA
 * pin from the ConfigMap `dotmesh-cluster-ca`, and adds the cluster over HTTPS (32606) with
 * `--trust-ca`; a wrong pin is refused before the key is sent. A server outside Kubernetes (a
 * dotmesh-server process with its own pool) pulls a dot a pod wrote and `dm` committed in the
 * cluster, and pushes a dot made outside into the cluster, where a pod reads it: the commit ids
 * and the files' hashes are the same on both sides.
 *
 * The CRDs of the manifest, on the same install: DotTransfers run by the operator push a new
 * branch of that dot to the server outside (which listens on every address: the cluster's
 * servers dial it through the test bridge) and pull a commit made there back, with the same
 * commits and bytes on both sides, progress and Completed in their status and Started/Completed
 * Events; a pull onto a diverged dot fails with DIVERGED and its hint, nothing pulled; a missing
 * Secret, a remote that is down (retried) and a hostile dot name each fail with a clear status
 * error and nothing transferred; `kubectl get dots` lists the dots with their branches, and
 * an edit or a deletion of a Dot is refused by the manifest's policy; neither
 * API key appears in any status, Event, pod spec or operator log.
 *
 * The volume populator, with the CSI driver of the docs installed beside: a PVC of the class
 * `dotmesh-csi` whose dataSourceRef names a DotCommit of a commit made on the server outside
 * (not its newest) is pulled by one DotTransfer and bound; a pod reads exactly that commit's
 * bytes; a second PVC of the same DotCommit is bound with no second DotTransfer. A DotCommit of
 * another user's dot, with a hostile dot name, or naming a DotRemote that does not exist gives
 * the PVC a PopulationFailed Event saying why, no PV, no dot.
 *
 * Bad input through the operator on the same install: a node loses the selection label while
 * a pod writes to a dot there (its server pod stays, serving, until that pod is gone; then the
 * node leaves the Dotmesh cluster, its dot moving to a node left with every line the pod wrote,
 * and its pod goes; labelled again, it comes back as the same node and holds the data as a
 * replica); PVCs of the class `dotmesh` with a hostile `dotmeshName` or a dotmesh
 * namespace outside the allowlist get a ProvisioningFailed Event from the manifest's
 * provisioner, no PV, and no dot.
 */

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('dm from a workstation: HTTPS with the CA pin, push and pull with a cluster outside Kubernetes', {
  skip: skipUnless(['root', 'netns', 'k8s', 'btrfs']),
  timeout: 20 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let kubectl: Kubectl;
  let apiKey: string;
  let install: DocInstall;
  let outside: ServerProcess;
  let home: string;
  let ns: string;
  const suffix = randomBytes(3).toString('hex');
  const inCluster = `made-in-k8s-${suffix}`;
  const madeOutside = `made-outside-${suffix}`;
  let failed = false;
  afterEach((t) => {
    if ('passed' in t && t.passed === false) failed = true;
  });
  after(() => cleanup.run());

  const node = (i: number) => cluster.nodes[i]!;
  const net = () => ({ gateway: cluster.apiServerAddress, bridge: cluster.bridge });
  /** The admin API of the server on node `i` (plain HTTP from the root namespace, for checks). */
  const api = async (i: number) => {
    await routeCheckRoot(net(), node(i).ip);
    return new DotmeshClient({ url: `http://${node(i).ip}:32607/rpc`, user: 'admin', apiKey, timeoutMs: 60_000 });
  };
  const dm = async (args: readonly string[], env: Record<string, string> = {}): Promise<DmResult> => {
    for (const n of cluster.nodes) await routeCheckRoot(net(), n.ip);
    return runDm(args, { home, env, timeoutMs: 300_000 });
  };
  const dmOk = async (args: readonly string[], env: Record<string, string> = {}): Promise<string> => {
    const r = await dm(args, env);
    if (r.code !== 0) {
      assert.fail(
        `dm ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\n${(await outside.log()).slice(-3000)}`,
      );
    }
    return r.stdout;
  };
  /** The SHA-256 of `file` in commit `commit` of admin/`dot` on `server` (the commit mounted read-only). */
  const hashInCommit = async (server: DotmeshClient, dot: string, commit: string, file: string) =>
    sha256(await readFile(join(await mountOf(server, dot, commit), '__default__', file)));
  const commitIds = async (server: DotmeshClient, dot: string) =>
    (await server.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' })).map((c) => c.Id);
  /** The message of the newest commit of admin/`dot` on `server`, and its id. */
  const newest = async (server: DotmeshClient, dot: string) => {
    const last = (await server.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' })).at(-1);
    return { id: last?.Id ?? '', message: last?.Metadata.message ?? '' };
  };
  /** A pod on node `i` running `script` with PVC `claim` at /data, run to completion; its output. */
  const runOnNode = (i: number, pod: string, claim: string, script: string) =>
    runPodToCompletion(
      kubectl,
      podManifest({
        name: pod,
        namespace: ns,
        node: node(i).name,
        image: cluster.images.busybox.ref,
        command: ['sh', '-c', script],
        ...claimAtData(claim),
      }),
      180_000,
    );
  /** runOnNode; its output once the pod is gone and the dot unused. */
  const inPod = async (i: number, pod: string, claim: string, dot: string, script: string) => {
    const out = await runOnNode(i, pod, claim, script);
    await deleteAndWait(cluster, ['pod', pod, '-n', ns]);
    const server = { admin: await api(i) };
    const fsId = await server.admin.call('Lookup', { Namespace: 'admin', Name: dot, Branch: '' });
    await waitUnused(server, fsId, `the kubelet of ${node(i).name} unmounted ${dot} after pod ${pod}`);
    return out.trim();
  };
  const claim = (name: string, dot: string) =>
    apply(cluster, {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name, namespace: ns, annotations: { dotmeshName: dot } },
      spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'dotmesh', resources: { requests: { storage: '1Gi' } } },
    });

  before(async () => {
    cluster = await useTestCluster(suite);
    kubectl = cluster.kubectl;
    install = await installDotmeshFromDoc(cluster, cleanup, {
      docFile: DOC,
      dist: DIST,
      onBeforeRemoval: diagnosticsOnFailure(cluster, () => failed),
    });
    apiKey = install.apiKey;
    // The CSI driver (the populator's volumes): applied now, ready by the populator's test.
    await installDotmeshCsiFromDoc(cluster, cleanup, install, { docFile: DOC });
    // While the server pods start: the server outside (on every address: the cluster's servers
    // dial it for DotTransfers through the test bridge), the workstation's home, the namespace.
    [outside, home, ns] = await Promise.all([
      startServerProcess({ cleanup, serverBin: SERVER_BUNDLE, poolSize: '2G', extraConfig: { listenHost: '0.0.0.0' } }),
      makeTempDir('k8s-workstation-home', cleanup),
      testNamespace(kubectl, suite, 'dmtest-opclients'),
      waitForDotmesh(cluster, cluster.nodes),
    ]);
    // Undone newest first: the pods, then the claims (their PVs go with the provisioner).
    cleanup.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claims');
    cleanup.add(() => deleteAndWait(cluster, ['pod', '--all', '-n', ns]), 'delete the pods while the servers run');
  });

  test('the key from the Secret dotmesh, the pin from the ConfigMap dotmesh-cluster-ca: a wrong pin is refused, the right one trusts every node', async () => {
    // As the docs say: the key from the Secret, the pin from the ConfigMap.
    const key = Buffer.from(
      (await kubectl(['get', 'secret', 'dotmesh', '-n', NS, '-o', 'jsonpath={.data.dotmesh-api-key\\.txt}'])).stdout,
      'base64',
    ).toString('utf8');
    assert.equal(key, apiKey);
    await waitFor(
      async () =>
        (
          await kubectl(['get', 'configmap', 'dotmesh-cluster-ca', '-n', NS, '-o', 'jsonpath={.data.ca-hash}']).catch(() => ({
            stdout: '',
          }))
        ).stdout !== '',
      { timeoutMs: 120_000, intervalMs: 1000, what: 'the operator published the ConfigMap dotmesh-cluster-ca' },
    );
    const pin = (await kubectl(['get', 'configmap', 'dotmesh-cluster-ca', '-n', NS, '-o', 'jsonpath={.data.ca-hash}'])).stdout;
    const caPem = (await kubectl(['get', 'configmap', 'dotmesh-cluster-ca', '-n', NS, '-o', 'jsonpath={.data.ca\\.crt}'])).stdout;
    assert.match(pin, /^sha256:[0-9a-f]{64}$/);
    assert.equal(publicKeyPin(new X509Certificate(caPem)), pin, 'ca.crt is the CA of that pin');
    // The pin the join Secrets carried (what the joined servers checked) is the same CA.
    const joinPin = (await kubectl(['get', 'secret', `dotmesh-join-${node(1).name}`, '-n', NS, '-o', 'jsonpath={.data.ca-hash}']))
      .stdout;
    assert.equal(Buffer.from(joinPin, 'base64').toString('utf8'), pin, 'the CA the servers joined under');

    // A wrong pin (another CA's): refused on the certificate, before the key is sent; nothing saved.
    const wrongPin = `sha256:${'0'.repeat(64)}`;
    const wrong = await dm(['remote', 'add', 'wrong', `admin@${node(0).ip}:32606`, '--trust-ca', wrongPin], {
      DOTMESH_PASSWORD: `not-the-key-${suffix}`,
    });
    assert.notEqual(wrong.code, 0);
    assert.match(
      wrong.stderr,
      new RegExp(`is not issued by the cluster CA ${wrongPin} given with --trust-ca \\(its issuer is ${pin}\\)`),
    );
    assert.doesNotMatch(wrong.stderr, /API key|password|authenticat/i, 'refused on the certificate, not on the (wrong) key');
    assert.equal((await dm(['remote'])).stdout.trim(), '', 'no remote saved');

    // The documented command: every node of the cluster is trusted under the pin.
    await dmOk(['remote', 'add', 'k8s', `admin@${node(0).ip}:32606`, '--trust-ca', pin], { DOTMESH_PASSWORD: key });
    await dmOk(['remote', 'add', 'k8s-other', `admin@${node(2).ip}:32606`, '--trust-ca', pin], { DOTMESH_PASSWORD: key });
    const known = await readFile(join(home, '.dotmesh', 'known_servers'), 'utf8');
    assert.match(known, new RegExp(`^${node(0).ip.replaceAll('.', '\\.')}:32606 cluster-ca:${pin}$`, 'm'));
    assert.match(known, new RegExp(`^${node(2).ip.replaceAll('.', '\\.')}:32606 cluster-ca:${pin}$`, 'm'));
    assert.match(await dmOk(['remote', '-v']), new RegExp(`\\* k8s\\s+https://admin@${node(0).ip.replaceAll('.', '\\.')}:32606`));
    // The server outside Kubernetes: a plain-HTTP remote on this machine.
    await dmOk(['remote', 'add', 'outside', `admin@127.0.0.1:${outside.port}`], { DOTMESH_PASSWORD: outside.apiKey });
  });

  test('a dot a pod wrote and dm committed in the cluster is pulled to the server outside: same commits, same bytes', async () => {
    await claim('made-in-k8s', inCluster);
    const written = await inPod(1, 'writer', 'made-in-k8s', inCluster, writeRandomScript('blob', false));
    assert.match(written, /^[0-9a-f]{64}$/);
    // dm on the workstation commits it through node-0 (the dot's master is node-1's server).
    await dmOk(['remote', 'switch', 'k8s']);
    await dmOk(['switch', inCluster]);
    await dmOk(['commit', '-m', 'written by a pod in the cluster']);
    const k8s = await api(0);
    const inK8s = await commitIds(k8s, inCluster);
    const first = await newest(k8s, inCluster);
    assert.equal(first.message, 'written by a pod in the cluster');
    assert.equal(await hashInCommit(await api(1), inCluster, first.id, 'blob'), written, 'the commit holds what the pod wrote');

    // The server outside pulls it from the cluster over HTTPS, checking the cluster's certificate by the pin.
    await dmOk(['remote', 'switch', 'outside']);
    await dmOk(['clone', 'k8s', inCluster]);
    assert.deepEqual(await commitIds(outside.admin, inCluster), inK8s, 'the same commits outside');
    assert.equal(await hashInCommit(outside.admin, inCluster, first.id, 'blob'), written, 'the same bytes outside');

    // A second commit in the cluster arrives with dm pull.
    await inPod(2, 'appender', 'made-in-k8s', inCluster, 'echo more >> /data/blob');
    await dmOk(['remote', 'switch', 'k8s']);
    await dmOk(['commit', '-m', 'appended by a pod on node-2']);
    const inK8sNow = await commitIds(k8s, inCluster);
    const second = await newest(k8s, inCluster);
    assert.equal(second.message, 'appended by a pod on node-2');
    assert.deepEqual(inK8sNow, [...inK8s, second.id]);
    await dmOk(['remote', 'switch', 'outside']);
    await dmOk(['pull', 'k8s', inCluster]);
    assert.deepEqual(await commitIds(outside.admin, inCluster), inK8sNow);
    const appended = sha256(
      Buffer.concat([
        await readFile(join(await mountOf(outside.admin, inCluster, first.id), '__default__', 'blob')),
        Buffer.from('more\n'),
      ]),
    );
    assert.equal(await hashInCommit(outside.admin, inCluster, second.id, 'blob'), appended, 'the appended bytes outside');
    assert.equal(await hashInCommit(await api(2), inCluster, second.id, 'blob'), appended, 'the appended bytes in the cluster');
  });

  test('a dot made outside is pushed into the cluster, where a pod reads it: same commits, same bytes', async () => {
    const data = randomBytes(300_000);
    const path = await outside.admin.call('Procure', { Namespace: 'admin', Name: madeOutside, Subdot: '' });
    await writeFile(join(path, 'blob'), data);
    await dmOk(['remote', 'switch', 'outside']);
    await dmOk(['switch', madeOutside]);
    await dmOk(['commit', '-m', 'made outside Kubernetes']);
    const outsideCommits = await commitIds(outside.admin, madeOutside);
    const made = await newest(outside.admin, madeOutside);
    assert.equal(made.message, 'made outside Kubernetes');

    await dmOk(['push', 'k8s', madeOutside]);
    const k8s = await api(0);
    assert.deepEqual(await commitIds(k8s, madeOutside), outsideCommits, 'the same commits in the cluster');
    assert.equal(await hashInCommit(k8s, madeOutside, made.id, 'blob'), sha256(data), 'the same bytes in the cluster');
    // A pod on another node reads the pushed data through a PVC naming the dot.
    await claim('made-outside', madeOutside);
    const read = await inPod(1, 'reader', 'made-outside', madeOutside, 'sha256sum /data/blob | cut -d" " -f1');
    assert.equal(read, sha256(data), 'the pod reads what was pushed');
  });
  /** Applies a DotTransfer and waits until it is Completed or Failed; its status. */
  const runTransfer = async (name: string, spec: Record<string, unknown>): Promise<TransferStatus> => {
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'dotmesh.io/v1alpha1', kind: 'DotTransfer', metadata: { name, namespace: NS }, spec }),
    });
    let status: TransferStatus | undefined;
    await waitFor(
      async () => {
        status = (await getJson<{ status?: TransferStatus }>(kubectl, ['get', 'dottransfer', name, '-n', NS])).status;
        return status?.phase === 'Completed' || status?.phase === 'Failed';
      },
      { timeoutMs: 240_000, intervalMs: 1000, what: `DotTransfer ${name} to end` },
    );
    return status!;
  };
  /** Writes `files` into admin/`dot` on the server outside (made when missing) and commits; the commit id. */
  const commitOutside = async (dot: string, files: Record<string, Buffer | string>, message: string) => {
    const path = await outside.admin.call('Procure', { Namespace: 'admin', Name: dot, Subdot: '' });
    for (const [name, data] of Object.entries(files)) await writeFile(join(path, name), data);
    return outside.admin.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: message, Metadata: {} });
  };
  const transferObjects: string[] = [];
  const remoteObjects: string[] = [];
  const remote = async (name: string, spec: Record<string, unknown>) => {
    remoteObjects.push(name);
    await kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'dotmesh.io/v1alpha1', kind: 'DotRemote', metadata: { name, namespace: NS }, spec }),
    });
  };

  test('DotTransfers: a branch pushed to the server outside, a commit pulled back (same commits, same bytes), a divergence refused with its structured error', async () => {
    cleanup.add(async () => {
      for (const t of transferObjects)
        await kubectl(['delete', 'dottransfer', t, '-n', NS, '--ignore-not-found']).catch(() => {});
      for (const r of remoteObjects) await kubectl(['delete', 'dotremote', r, '-n', NS, '--ignore-not-found']).catch(() => {});
      await kubectl(['delete', 'secret', 'outside-key', '-n', NS, '--ignore-not-found']).catch(() => {});
    }, 'delete the DotTransfers, DotRemotes and the remote key');
    await kubectl(['create', 'secret', 'generic', 'outside-key', '-n', NS, `--from-literal=apiKey=${outside.apiKey}`]);
    await remote('outside', {
      host: cluster.apiServerAddress,
      port: outside.port,
      plainHttp: true,
      apiKeySecret: { name: 'outside-key' },
    });
    const k8s = await api(0);
    const branchCommits = async (server: DotmeshClient, dot: string, branch: string) =>
      (await server.call('Commits', { Namespace: 'admin', Name: dot, Branch: branch })).map((c) => c.Id);

    // Push: a new branch of the dot a pod wrote, with a commit of its own.
    const base = await newest(k8s, inCluster);
    await k8s.call('Branch', {
      Namespace: 'admin',
      Name: inCluster,
      SourceBranch: '',
      NewBranchName: 'feature',
      SourceCommitId: base.id,
    });
    const onFeature = await k8s.call('Commit', {
      Namespace: 'admin',
      Name: inCluster,
      Branch: 'feature',
      Message: 'on feature',
      Metadata: {},
    });
    transferObjects.push('push-feature');
    const pushed = await runTransfer('push-feature', { remote: 'outside', direction: 'push', dot: inCluster, branch: 'feature' });
    assert.equal(pushed.phase, 'Completed', JSON.stringify(pushed));
    assert.ok(pushed.commitsTotal >= 1 && pushed.commitsSent === pushed.commitsTotal, JSON.stringify(pushed));
    assert.match(pushed.progress, /^(\d+)\/\1 commits, \d+\/\d+ bytes$/);
    assert.equal(pushed.error, undefined);
    const featureHere = await branchCommits(k8s, inCluster, 'feature');
    assert.ok(featureHere.includes(onFeature));
    assert.deepEqual(await branchCommits(outside.admin, inCluster, 'feature'), featureHere, 'the same commits outside');

    // Pull: a commit made outside on master arrives in the cluster, with its bytes.
    const data = randomBytes(200_000);
    const outsideCommit = await commitOutside(inCluster, { 'from-outside': data }, 'outside');
    transferObjects.push('pull-master');
    const pulled = await runTransfer('pull-master', { remote: 'outside', direction: 'pull', dot: inCluster });
    assert.equal(pulled.phase, 'Completed', JSON.stringify(pulled));
    assert.deepEqual(
      await commitIds(k8s, inCluster),
      await commitIds(outside.admin, inCluster),
      'the same commits in the cluster',
    );
    // Read on node-0, which gets the commit by replication from the dot's master.
    await waitFor(
      async () => (await hashInCommit(k8s, inCluster, outsideCommit, 'from-outside').catch(() => '')) === sha256(data),
      {
        timeoutMs: 120_000,
        intervalMs: 1000,
        what: 'the bytes pulled from outside, in the cluster',
      },
    );

    // Divergence: a commit on each side of the dot made outside; the pull is refused, nothing changes.
    await k8s.call('Commit', { Namespace: 'admin', Name: madeOutside, Branch: '', Message: 'here', Metadata: {} });
    await outside.admin.call('Commit', { Namespace: 'admin', Name: madeOutside, Branch: '', Message: 'there', Metadata: {} });
    const before = await commitIds(k8s, madeOutside);
    transferObjects.push('pull-diverged');
    const diverged = await runTransfer('pull-diverged', { remote: 'outside', direction: 'pull', dot: madeOutside });
    assert.equal(diverged.phase, 'Failed', JSON.stringify(diverged));
    assert.equal(diverged.error?.code, 'DIVERGED', JSON.stringify(diverged));
    assert.match(diverged.error?.hint ?? '', /stash/);
    assert.deepEqual(await commitIds(k8s, madeOutside), before, 'nothing pulled');

    // Events: Started and Completed, Failed with the code.
    const events = await getJson<{
      items: { involvedObject: { name: string; kind: string }; reason: string; message: string }[];
    }>(kubectl, ['get', 'events', '-n', NS, '--field-selector', 'involvedObject.kind=DotTransfer']);
    const reasons = (name: string) =>
      events.items
        .filter((e) => e.involvedObject.name === name)
        .map((e) => e.reason)
        .sort();
    assert.deepEqual(reasons('push-feature'), ['Completed', 'Started']);
    assert.ok(
      events.items.some(
        (e) => e.involvedObject.name === 'pull-diverged' && e.reason === 'Failed' && e.message.startsWith('DIVERGED:'),
      ),
    );
  });

  test('DotTransfers with bad input fail with a clear status error, nothing transferred: a missing Secret, a remote that is down, a hostile dot name', async () => {
    const [downPort] = await freePorts(1);
    await remote('no-secret', {
      host: cluster.apiServerAddress,
      port: outside.port,
      plainHttp: true,
      apiKeySecret: { name: `absent-${suffix}` },
    });
    await remote('down', {
      host: cluster.apiServerAddress,
      port: downPort,
      plainHttp: true,
      apiKeySecret: { name: 'outside-key' },
    });
    const never = `never-${suffix}`;
    transferObjects.push('bad-secret', 'bad-down', 'bad-name');
    const [noSecret, down, hostile] = await Promise.all([
      runTransfer('bad-secret', { remote: 'no-secret', direction: 'push', dot: inCluster }),
      runTransfer('bad-down', { remote: 'down', direction: 'pull', dot: never }),
      runTransfer('bad-name', { remote: 'outside', direction: 'pull', dot: '../../etc' }),
    ]);
    assert.equal(noSecret.phase, 'Failed');
    assert.equal(noSecret.error?.code, 'INVALID_ARGUMENT');
    assert.match(
      noSecret.error?.message ?? '',
      new RegExp(`the Secret ${NS}/absent-${suffix} holding the remote’s API key does not exist`),
    );
    assert.match(noSecret.error?.hint ?? '', /kubectl create secret generic/);
    assert.equal(noSecret.transferId, undefined, 'never handed to a server');
    assert.equal(down.phase, 'Failed', JSON.stringify(down));
    assert.equal(down.error?.code, 'UNAVAILABLE', JSON.stringify(down));
    assert.ok((down.retries ?? 0) >= 1, `retried: ${JSON.stringify(down)}`);
    assert.equal(hostile.phase, 'Failed');
    assert.equal(hostile.error?.code, 'INVALID_NAME');
    assert.match(hostile.error?.message ?? '', /\.\.\/\.\.\/etc|more than one slash|invalid/i);
    assert.equal(hostile.transferId, undefined);
    // Nothing transferred: no such dot on either side.
    assert.equal(await dotExists({ admin: outside.admin }, 'admin', never), false);
    assert.equal(await dotExists({ admin: await api(0) }, 'admin', never), false);
  });

  test('PVCs from a DotCommit of a commit outside: pulled once, exactly that commit’s bytes in a pod, a second PVC with no second transfer; bad sources refused with an Event', async () => {
    await waitForDotmeshCsi(cluster, cluster.nodes);
    const shared = `shared-${suffix}`;
    const pvcUids: string[] = [];
    cleanup.add(async () => {
      await kubectl(['delete', 'pvc', 'from-commit-1', 'from-commit-2', '-n', ns, '--ignore-not-found', '--wait=true']).catch(
        () => {},
      );
      // Their PVs go through csi-provisioner (DeleteVolume: the branch) before the driver is removed.
      for (const uid of pvcUids) await kubectl(['wait', '--for=delete', `pv/pvc-${uid}`, '--timeout=120s']).catch(() => {});
      await kubectl(['delete', 'dotcommits', '--all', '-n', ns, '--ignore-not-found']).catch(() => {});
      await kubectl(['delete', 'dottransfers', '-n', NS, '-l', 'dotmesh.io/dot-commit']).catch(() => {});
    }, 'delete the populated claims, their PVs, the DotCommits and their pulls');
    await kubectl(['create', 'secret', 'generic', 'outside-pop-key', '-n', NS, `--from-literal=apiKey=${outside.apiKey}`]);
    cleanup.add(
      () => kubectl(['delete', 'secret', 'outside-pop-key', '-n', NS, '--ignore-not-found']),
      'delete the populator’s remote key',
    );
    await remote('outside-pop', {
      host: cluster.apiServerAddress,
      port: outside.port,
      plainHttp: true,
      apiKeySecret: { name: 'outside-pop-key' },
    });

    // Outside: two commits; the DotCommit names the first (the pull brings both).
    const first = randomBytes(400_000);
    const c1 = await commitOutside(shared, { fixture: first }, 'fixture v1');
    await commitOutside(shared, { fixture: randomBytes(1000), later: 'v2' }, 'fixture v2');

    const dotCommit = (name: string, spec: Record<string, unknown>) =>
      apply(cluster, { apiVersion: 'dotmesh.io/v1alpha1', kind: 'DotCommit', metadata: { name, namespace: ns }, spec });
    const fromCommit = (name: string, source: string) =>
      apply(cluster, csiClaim({ name, namespace: ns, dataSourceRef: dotCommitSource(source) }));
    const bound = (name: string) =>
      waitFor(
        async () => {
          const pvc = await getJson<{ metadata: { uid: string }; status: { phase: string } }>(kubectl, [
            'get',
            'pvc',
            name,
            '-n',
            ns,
          ]);
          return pvc.status.phase === 'Bound' ? pvc.metadata.uid : undefined;
        },
        { timeoutMs: 240_000, intervalMs: 1000, what: `PVC ${name} Bound` },
      );
    const events = async (name: string) =>
      (
        await kubectl([
          'get',
          'events',
          '-n',
          ns,
          '--field-selector',
          `involvedObject.kind=PersistentVolumeClaim,involvedObject.name=${name}`,
          '-o',
          'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
        ])
      ).stdout;
    /** Waits for an Event on PVC `name` matching `re` (recorded just after its PV is made). */
    const eventMatching = (name: string, re: RegExp) =>
      waitFor(async () => re.test(await events(name)), {
        timeoutMs: 30_000,
        intervalMs: 500,
        what: `an Event on ${name} matching ${re}`,
      });
    const pulls = async () =>
      (
        await getJson<{ items: { metadata: { name: string } }[] }>(kubectl, [
          'get',
          'dottransfers',
          '-n',
          NS,
          '-l',
          `dotmesh.io/dot-commit=${ns}.fixtures`,
        ])
      ).items.length;
    const readFixture = (i: number, pod: string, claimName: string) =>
      runOnNode(i, pod, claimName, 'sha256sum /data/fixture | cut -d" " -f1; ls /data');

    await dotCommit('fixtures', { dot: shared, remote: 'outside-pop', commit: c1 });
    await fromCommit('from-commit-1', 'fixtures');
    pvcUids.push(await bound('from-commit-1'));
    assert.equal(await pulls(), 1, 'one pull');
    await eventMatching(
      'from-commit-1',
      new RegExp(`Populated: branch pvc-[-0-9a-f]+ of admin/${shared} from commit ${c1} \\(pulled by DotTransfer`),
    );
    const dc = await getJson<{ status: { commit: string; transfer: string } }>(kubectl, [
      'get',
      'dotcommit',
      'fixtures',
      '-n',
      ns,
    ]);
    assert.equal(dc.status.commit, c1, 'the DotCommit is pinned to its commit');
    // The second claim finds the commit here: bound with no second pull.
    await fromCommit('from-commit-2', 'fixtures');
    pvcUids.push(await bound('from-commit-2'));
    assert.equal(await pulls(), 1, 'no second pull');
    await eventMatching('from-commit-2', new RegExp(`Populated: .* from commit ${c1} \\(already here, no transfer\\)`));
    // Pods on two nodes read exactly the first commit's bytes (not the newer commit's), each on its own branch.
    const [one, two] = await Promise.all([
      readFixture(1, 'pop-reader-1', 'from-commit-1'),
      readFixture(2, 'pop-reader-2', 'from-commit-2'),
    ]);
    for (const out of [one, two]) assert.deepEqual(out.trim().split('\n'), [sha256(first), 'fixture'], out);
    await Promise.all(['pop-reader-1', 'pop-reader-2'].map((p) => deleteAndWait(cluster, ['pod', p, '-n', ns])));
    const pvs = await Promise.all(
      pvcUids.map((uid) =>
        getJson<{ spec: { csi: { volumeHandle: string; volumeAttributes: Record<string, string> } } }>(kubectl, [
          'get',
          'pv',
          `pvc-${uid}`,
        ]),
      ),
    );
    assert.deepEqual(
      pvs.map((pv) => pv.spec.csi.volumeAttributes.dotmeshBranch),
      pvcUids.map((uid) => `pvc-${uid}`),
      'a branch of its own for each claim',
    );

    // Bad sources: another user's dot, a hostile name, a remote that does not exist.
    const absent = `absent-${suffix}`;
    await dotCommit('other-user', { dot: 'bob/data' });
    await dotCommit('hostile', { dot: '../../etc' });
    await dotCommit('no-remote', { dot: absent, remote: 'no-such-remote' });
    for (const name of ['other-user', 'hostile', 'no-remote']) await fromCommit(`bad-${name}`, name);
    const expected: [string, RegExp][] = [
      [
        'bad-other-user',
        new RegExp(`PopulationFailed: PERMISSION_DENIED: Kubernetes namespace ${ns} may not use dotmesh namespace bob`),
      ],
      ['bad-hostile', /PopulationFailed: INVALID_NAME: DotCommit .*\/hostile: spec\.dot: Volume names must be of the form/],
      [
        'bad-no-remote',
        /PopulationFailed: INVALID_ARGUMENT: pulling admin\/absent-.* DotRemote dotmesh\/no-such-remote does not exist/,
      ],
    ];
    for (const [name, message] of expected) {
      const warnings = await waitFor(
        async () => ((await pvcWarnings(cluster, ns, name)).length > 0 ? pvcWarnings(cluster, ns, name) : undefined),
        {
          timeoutMs: 120_000,
          intervalMs: 1000,
          what: `a Warning Event on PVC ${name}`,
        },
      );
      assert.ok(
        warnings.some((w) => message.test(w)),
        `${name}: ${warnings.join(' | ')}`,
      );
    }
    for (const [name] of expected) {
      const r = await kubectl(['get', 'pvc', name, '-n', ns, '-o', 'jsonpath={.status.phase}/{.spec.volumeName}']);
      assert.equal(r.stdout, 'Pending/', `${name} has no PV`);
      await deleteAndWait(cluster, ['pvc', name, '-n', ns]);
    }
    const s0 = { admin: await api(0) };
    assert.equal(await dotExists(s0, 'bob', 'data'), false, 'no dot of the other user');
    assert.equal(await dotExists(s0, 'admin', absent), false, 'nothing pulled from the missing remote');
    assert.ok(
      !(await kubectl(['get', 'events,dotcommits', '-n', ns, '-o', 'json'])).stdout.includes(outside.apiKey),
      'no key in Events or DotCommits',
    );
  });

  test('kubectl get dots lists the dots with their branches; no credential in a status, an Event or the operator log', async () => {
    const row = (out: string, dot: string) => out.split('\n').find((l) => l.split(/\s+/)[1] === `admin/${dot}`);
    let table = '';
    await waitFor(
      async () => {
        table = (await kubectl(['get', 'dots', '-n', NS])).stdout;
        return row(table, inCluster)?.includes('master,feature') === true && row(table, madeOutside) !== undefined;
      },
      { timeoutMs: 120_000, intervalMs: 2000, what: `kubectl get dots to list admin/${inCluster} with its branch` },
    );
    assert.match(table.split('\n')[0]!, /^NAME\s+DOT\s+BRANCHES\s+SIZE\s+MASTER\s+REPLICATION\s+AGE$/);
    const cols = row(table, inCluster)!.split(/\s+/);
    assert.equal(cols[0], inCluster, 'named after the dot');
    assert.equal(cols[2], 'master,feature');
    assert.match(cols[3]!, /^\d+(\.\d)?[KMG]?i?B$/, `a size: ${cols[3]}`);
    assert.ok(
      cluster.nodes.some((n) => n.name === cols[4]),
      `the master column names a node: ${cols[4]}`,
    );
    assert.match(cols[5]!, /^[1-9]\d*\/[1-9]\d*$/, `replication: ${cols[5]}`);
    const dot = await getJson<{ status: { branches: { name: string; commits: number }[]; dotmeshName: string } }>(kubectl, [
      'get',
      'dot',
      inCluster,
      '-n',
      NS,
    ]);
    assert.equal(dot.status.dotmeshName, inCluster);
    assert.deepEqual(
      dot.status.branches.map((b) => [b.name, b.commits]),
      [
        ['master', (await commitIds(await api(0), inCluster)).length],
        [
          'feature',
          (await api(0).then((c) => c.call('Commits', { Namespace: 'admin', Name: inCluster, Branch: 'feature' }))).length,
        ],
      ],
    );
    // Read-only: the manifest's policy refuses an edit or a deletion, even by a cluster admin.
    for (const args of [
      ['annotate', 'dot', inCluster, '-n', NS, 'edited=yes'],
      ['delete', 'dot', inCluster, '-n', NS, '--wait=false'],
    ]) {
      await assert.rejects(kubectl(args), /dotmesh-dots-read-only.*only the operator writes them/s, args.join(' '));
    }
    const unchanged = await getJson<{ metadata: { annotations?: Record<string, string>; deletionTimestamp?: string } }>(kubectl, [
      'get',
      'dot',
      inCluster,
      '-n',
      NS,
    ]);
    assert.equal(unchanged.metadata.annotations?.edited, undefined);
    assert.equal(unchanged.metadata.deletionTimestamp, undefined);
    // The key of the remote (and the cluster's own) appear nowhere users or logs see.
    const seen = [
      (await kubectl(['get', 'dottransfers,dotremotes,dots', '-n', NS, '-o', 'json'])).stdout,
      (await kubectl(['get', 'events', '-n', NS, '-o', 'json'])).stdout,
      ...(await Promise.all(
        (await operatorPods(kubectl)).map(async (p) => (await kubectl(['logs', '-n', NS, p.metadata.name])).stdout),
      )),
      (await kubectl(['get', 'pods', '-n', NS, '-o', 'json'])).stdout,
    ].join('\n');
    assert.ok(seen.includes('push-feature'), 'the transfers are in what was read');
    assert.ok(!seen.includes(outside.apiKey), 'the remote’s API key appears nowhere');
    assert.ok(!seen.includes(apiKey), 'the cluster’s API key appears nowhere');
  });

  test('a node loses the selection label while a pod writes to a dot there: its server stays until the pod is gone', async () => {
    const label = `dmtest-${suffix}.example/pick`;
    const names = cluster.nodes.map((n) => n.name);
    const n2 = node(2).name;
    const dot = `held-${suffix}`;
    cleanup.add(async () => {
      await kubectl(['apply', '-f', '-'], { input: install.configMap(install.baseData) }).catch(() => {});
      for (const n of names) await kubectl(['label', 'node', n, `${label}-`]).catch(() => {});
    }, 'restore the node selection');
    await kubectl(['label', 'node', ...names, `${label}=yes`]);
    await kubectl(['apply', '-f', '-'], { input: install.configMap({ ...install.baseData, nodeSelector: `${label}=yes` }) });
    const before = await serverPods(kubectl);
    // A pod on node-2 appends numbered lines to its dot until it is deleted.
    await claim('held', dot);
    await kubectl(['apply', '-f', '-'], {
      input: podManifest({
        name: 'appender',
        namespace: ns,
        node: n2,
        image: cluster.images.busybox.ref,
        command: ['sh', '-c', 'i=0; while true; do echo $i >> /data/log; i=$((i+1)); sleep 0.2; done'],
        ...claimAtData('held'),
      }),
    });
    const s2 = await api(2);
    await waitFor(async () => (await dotExists({ admin: s2 }, 'admin', dot)) && (await s2.call('NodeUses', {})).Uses.length > 0, {
      timeoutMs: 180_000,
      intervalMs: 1000,
      what: `the pod on ${n2} using ${dot}`,
    });

    // Node ids by node; the dot is mastered on node-2, where the pod uses it.
    const ids = await Promise.all([api(0), api(1), s2].map(async (c) => (await (await c).call('PoolInfo', {})).NodeId));
    const masterOf = async (via: DotmeshClient) =>
      (await via.call('AllDotsAndBranches', {})).Dots.find((d) => d.MasterBranch.Name.Name === dot)?.MasterBranch.Master ?? '';
    assert.equal(await masterOf(s2), ids[2]);

    await kubectl(['label', 'node', n2, `${label}-`]);
    const leader = await leaderPod(kubectl);
    assert.ok(leader, 'an operator leads');
    await waitFor(
      async () =>
        (await operatorLog(kubectl, leader.metadata.name)).some(
          (l) =>
            String(l.msg).startsWith('keeping the server pods of nodes no longer selected') &&
            JSON.stringify(l.pods).includes(`server-${n2}`),
        ),
      { timeoutMs: 120_000, intervalMs: 1000, what: `the operator holding server-${n2}` },
    );
    // Held: the same pod, serving; a commit through node-0 reaches it (the dot's master).
    const held = (await serverPods(kubectl)).get(`server-${n2}`);
    assert.equal(held?.metadata.uid, before.get(`server-${n2}`)?.metadata.uid, 'the server pod of the unlabelled node is kept');
    const s0 = await api(0);
    // Async: a sync commit of a branch in use on its master is refused by the replicas
    // (IN_USE → NOT_REPLICATED), a stage-a interaction of replication with durability that
    // this test is not about; the commit is what shows the held server serving.
    await s0.call('SetDurability', { Namespace: 'admin', Name: dot, Branch: '', WholeDot: true, Durability: 'async' });
    const commit = await s0.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: 'while held', Metadata: {} });
    const lines = (await readFile(join(await mountOf(s2, dot, commit), '__default__', 'log'), 'utf8')).trim().split('\n');
    assert.ok(lines.length > 0);
    assert.deepEqual(
      lines,
      lines.map((_, i) => String(i)),
      'every line the pod wrote, in order',
    );

    // The pod deleted: its unmount reaches the held server (the deletion completes), then the server pod goes.
    await deleteAndWait(cluster, ['pod', 'appender', '-n', ns]);
    await waitFor(async () => !(await serverPods(kubectl)).has(`server-${n2}`), {
      timeoutMs: 120_000,
      intervalMs: 1000,
      what: `server-${n2} to go once its dots are unused`,
    });
    assert.deepEqual(
      [...(await serverPods(kubectl)).keys()].sort(),
      names.filter((n) => n !== n2).map((n) => `server-${n}`),
    );
    // The node left the Dotmesh cluster before its pod went: the dot it mastered moved to a node left.
    assert.ok([ids[0], ids[1]].includes(await masterOf(s0)), `${dot} moved off ${n2}`);
    // Labelled again: the node's server comes back as the same node; the dot's commits reach it.
    await kubectl(['label', 'node', n2, `${label}=yes`]);
    await waitForDotmesh(cluster, cluster.nodes);
    const after = (await s0.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' })).map((c) => c.Id);
    assert.ok(after.includes(commit), 'the commit made while held is kept');
    const last = await s0.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: 'after', Metadata: {} });
    let lastMount = '';
    await waitFor(
      async () => {
        lastMount = await mountOf(s2, dot, last).catch(() => '');
        return lastMount !== '';
      },
      { timeoutMs: 120_000, intervalMs: 1000, what: `commit ${last} replicated to ${n2}` },
    );
    const finalLines = (await readFile(join(lastMount, '__default__', 'log'), 'utf8')).trim().split('\n');
    assert.ok(finalLines.length >= lines.length, `${finalLines.length} lines at the end, ${lines.length} while held`);
    assert.deepEqual(
      finalLines,
      finalLines.map((_, i) => String(i)),
      'the pod’s writes, in order',
    );
  });

  test("PVCs with a hostile dotmeshName or a dotmesh namespace outside the allowlist: the manifest's provisioner refuses them with an Event, no PV, no dot", async () => {
    const cases: RefusedClaim[] = [
      ['hostile-name', { dotmeshName: '../../etc' }, /invalid dot name "\.\.\/\.\.\/etc"/],
      [
        'outside-allowlist',
        { dotmeshNamespace: 'alice' },
        new RegExp(`Kubernetes namespace ${ns} may not use dotmesh namespace alice`),
      ],
    ];
    await expectClaimsRefused(cluster, ns, cases, (name, annotations) =>
      apply(cluster, {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name, namespace: ns, annotations },
        spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'dotmesh', resources: { requests: { storage: '1Gi' } } },
      }),
    );
    const s0 = { admin: await api(0) };
    assert.equal(await dotExists(s0, 'alice', 'outside-allowlist'), false, 'no dot in the namespace outside the allowlist');
    const all = await s0.admin.call('AllDotsAndBranches', null);
    assert.ok(!all.Dots.some((d) => d.MasterBranch.Name.Name.includes('etc')), 'no dot named after the hostile name');
  });
});

interface TransferStatus {
  phase: string;
  transferId?: string;
  progress: string;
  commitsSent: number;
  commitsTotal: number;
  retries?: number;
  error?: { code: string; message: string; hint?: string };
}

/** Where commit `commit` of admin/`dot` is mounted (read-only) on `server`. */
async function mountOf(server: DotmeshClient, dot: string, commit: string): Promise<string> {
  const fsId = await server.call('Lookup', { Namespace: 'admin', Name: dot, Branch: '' });
  return server.call('MountCommit', { FilesystemId: fsId, CommitId: commit });
}
