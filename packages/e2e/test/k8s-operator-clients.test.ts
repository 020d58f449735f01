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
  type DmResult,
  deleteAndWait,
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
} from '@dotmesh/testkit';
import { diagnosticsOnFailure, NS } from './k8s-operator-pods.ts';
import { apply, waitUnused, writeRandomScript } from './k8s-volumes.ts';

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
 */
const REPO = join(import.meta.dirname, '../../..');
const DOC = join(REPO, 'docs/kubernetes.md');
const DIST = join(REPO, 'dist');

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
  /** A pod on node `i` with PVC `claim` at /data, run to completion; its output once it is gone and the dot unused. */
  const inPod = async (i: number, pod: string, claim: string, dot: string, script: string) => {
    const out = await runPodToCompletion(
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
    const install = await installDotmeshFromDoc(cluster, cleanup, {
      docFile: DOC,
      dist: DIST,
      onBeforeRemoval: diagnosticsOnFailure(cluster, () => failed),
    });
    apiKey = install.apiKey;
    await waitForDotmesh(cluster, cluster.nodes);
    outside = await startServerProcess({ cleanup, serverBin: SERVER_BUNDLE, poolSize: '2G' });
    home = await makeTempDir('k8s-workstation-home', cleanup);
    ns = await testNamespace(kubectl, suite, 'dmtest-opclients');
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
});

/** Where commit `commit` of admin/`dot` is mounted (read-only) on `server`. */
async function mountOf(server: DotmeshClient, dot: string, commit: string): Promise<string> {
  const fsId = await server.call('Lookup', { Namespace: 'admin', Name: dot, Branch: '' });
  return server.call('MountCommit', { FilesystemId: fsId, CommitId: commit });
}
