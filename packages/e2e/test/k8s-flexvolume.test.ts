import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseMountInfo } from '@dotmesh/core';
import {
  Cleanup,
  claimAtData,
  deleteAndWait,
  installedDriverDir,
  makeTempDir,
  podManifest,
  type ServerProcess,
  skipUnless,
  type TestCluster,
  testNamespace,
  unmountUnder,
  useTestCluster,
  waitFor,
  waitForPodPhase,
} from '@dotmesh/testkit';
import { dotExists, hashInNewCommit, startFlexServer, staticFlexVolume, waitUnused, writeRandomScript } from './k8s-volumes.ts';

/**
 * The FlexVolume driver `dotmesh.io/dm` (the original's TestKubernetesVolumes, FlexVolume with a
 * static PV) on node-0 of the run's shared test cluster, the driver alone: dotmesh-server runs
 * as a host process (k8s-operator.test.ts runs it as the operator's pods) and installs the
 * driver into node-0's FlexVolume directory; node-0's kubelet finds it there and runs it for the
 * pods' volumes.
 */

interface DriverRun {
  readonly code: number | null;
  readonly reply: { status: string; message?: string; capabilities?: { attach: boolean } };
}

/** Runs the installed driver as the kubelet does, with `path` as PATH; returns its exit code and JSON reply. */
function runInstalledDriver(bin: string, args: readonly string[], path: string): Promise<DriverRun> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { env: { PATH: path }, timeout: 180_000 }, (error, stdout, stderr) => {
      try {
        // The kubelet reads stdout and stderr together: both must be the one JSON reply.
        assert.equal(stderr, '', 'the driver writes nothing to stderr');
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, reply: JSON.parse(stdout) });
      } catch (e) {
        reject(new Error(`driver ${args.join(' ')}: ${(e as Error).message}; stdout ${stdout}`));
      }
    });
  });
}

async function isMountPoint(path: string): Promise<boolean> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')).some((m) => m.mountPoint === path);
}

describe('the FlexVolume driver dotmesh.io/dm with a real kubelet', {
  skip: skipUnless(['root', 'netns', 'btrfs', 'losetup', 'k8s']),
  timeout: 20 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let cluster: TestCluster;
  let ns: string;
  let server: ServerProcess;
  after(() => cleanup.run());

  before(async () => {
    cluster = await useTestCluster(suite);
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-flex');
    server = await startFlexServer(cleanup, cluster.nodes[0]!);
  });

  test('the server installs the driver and its 0600 socket; with no node on PATH the driver answers init, mounts and unmounts a dot, and refuses bad input', async () => {
    const dir = installedDriverDir(cluster.nodes[0]!);
    const bin = join(dir, 'dm');
    assert.equal((await stat(bin)).mode & 0o777, 0o755);
    const socket = await stat(join(dir, 'dm.sock'));
    assert.ok(socket.isSocket());
    assert.equal(socket.mode & 0o777, 0o600, 'the admin socket is root’s alone');

    // A PATH with the programs the driver runs (mount, umount) and no node.
    const work = await makeTempDir('flex-direct', cleanup);
    cleanup.add(() => unmountUnder(`${work}/`), 'unmount what the driver left');
    const pathDir = join(work, 'bin');
    await mkdir(pathDir);
    for (const tool of ['mount', 'umount']) {
      const real = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => join(d, tool)).find((p) => existsSync(p));
      assert.ok(real, `${tool} is installed`);
      await symlink(real, join(pathDir, tool));
    }
    assert.deepEqual((await readdir(pathDir)).sort(), ['mount', 'umount'], 'no node on the PATH given to the driver');

    const init = await runInstalledDriver(bin, ['init'], pathDir);
    assert.deepEqual(init, { code: 0, reply: { status: 'Success', capabilities: { attach: false } } });

    assert.equal(await dotExists(server, 'admin', 'direct'), false);
    const target = join(work, 'target');
    await mkdir(target);
    const options = JSON.stringify({
      namespace: 'admin',
      name: 'direct',
      'kubernetes.io/readwrite': 'rw',
      'kubernetes.io/pod.name': 'p',
    });
    const mounted = await runInstalledDriver(bin, ['mount', target, options], pathDir);
    assert.equal(mounted.reply.status, 'Success', mounted.reply.message);
    assert.equal(mounted.code, 0);
    assert.ok(await isMountPoint(target), 'the dot is bound at the directory');
    assert.ok(await dotExists(server, 'admin', 'direct'), 'the dot was made on first use');
    await writeFile(join(target, 'f'), 'through the driver\n');
    const fsId = await server.admin.call('Lookup', { Namespace: 'admin', Name: 'direct', Branch: '' });
    const uses = await server.admin.call('BranchPublications', fsId);
    assert.deepEqual(
      uses.Uses.map((u) => [u.Kind, u.Target, u.Subdot]),
      [['mount', target, '__default__']],
    );
    const expected = createHash('sha256').update('through the driver\n').digest('hex');
    assert.equal(await hashInNewCommit(server, 'admin', 'direct', 'f'), expected);
    // A second mount of the same directory (a kubelet retry) changes nothing.
    assert.equal((await runInstalledDriver(bin, ['mount', target, options], pathDir)).reply.status, 'Success');
    assert.equal((await server.admin.call('BranchPublications', fsId)).Uses.length, 1);

    const unmounted = await runInstalledDriver(bin, ['unmount', target], pathDir);
    assert.deepEqual(unmounted, { code: 0, reply: { status: 'Success' } });
    assert.equal(await isMountPoint(target), false);
    assert.deepEqual((await server.admin.call('BranchPublications', fsId)).Uses, []);
    assert.equal((await runInstalledDriver(bin, ['unmount', target], pathDir)).reply.status, 'Success', 'unmount is idempotent');

    // Read-only, as the kubelet asks for a readOnly volume: the data is there, writes are refused.
    const ro = JSON.stringify({ name: 'direct', 'kubernetes.io/readwrite': 'ro' });
    assert.equal((await runInstalledDriver(bin, ['mount', target, ro], pathDir)).reply.status, 'Success');
    assert.equal(await readFile(join(target, 'f'), 'utf8'), 'through the driver\n');
    await assert.rejects(writeFile(join(target, 'g'), 'x'), { code: 'EROFS' });
    assert.deepEqual(
      (await server.admin.call('BranchPublications', fsId)).Uses.map((u) => [u.Target, u.ReadOnly]),
      [[target, true]],
    );
    assert.equal((await runInstalledDriver(bin, ['unmount', target], pathDir)).reply.status, 'Success');
    assert.equal(await isMountPoint(target), false);

    // Bad input: a clear Failure, nothing made.
    const bad: [string[], RegExp][] = [
      [['mount', target, JSON.stringify({ name: '../../etc' })], /invalid dot name/],
      [['mount', target, JSON.stringify({ name: 'ok', namespace: 'a b' })], /invalid namespace name/],
      [['mount', target, JSON.stringify({ name: 'ok', subdot: 'x/../y' })], /invalid subdot name/],
      [['mount', target, JSON.stringify({ name: 'ok', volume: 'x' })], /unknown option "volume"/],
      [['mount', target, JSON.stringify({ namespace: 'admin' })], /"name" \(the dot\) is missing/],
      [['mount', target, '{not json'], /not JSON/],
      [['mount', target, '["name"]'], /must be a JSON object/],
      [['mount', 'relative/dir', JSON.stringify({ name: 'ok' })], /not a clean absolute path/],
      [['mount', `${target}/../x`, JSON.stringify({ name: 'ok' })], /not a clean absolute path/],
      [['mount', target, JSON.stringify({ name: 'ok@no-such-branch' })], /does not exist/],
      [['unmount'], /mount directory must be a path/],
    ];
    for (const [args, message] of bad) {
      const r = await runInstalledDriver(bin, args, pathDir);
      assert.equal(r.reply.status, 'Failure', args.join(' '));
      assert.match(r.reply.message ?? '', message, args.join(' '));
      assert.equal(r.code, 1);
    }
    assert.equal(await dotExists(server, 'admin', 'ok'), false, 'no dot was made by a refused mount');
    assert.equal(await isMountPoint(target), false);
    const other = await runInstalledDriver(bin, ['getvolumename', '{}'], pathDir);
    assert.equal(other.reply.status, 'Not supported');
    assert.equal(other.code, 0);
  });

  test('a static PV with the flexVolume source mounts a dot into a pod (made on first use); a commit holds the data; deleting the pod ends the use', async () => {
    const node = cluster.nodes[0]!;
    const pv = `flex-${ns}`;
    // Undone newest first: the pods (unmounted while the server runs), the claim, the PV.
    cleanup.add(() => deleteAndWait(cluster, ['pv', pv]), 'delete the static PV');
    cleanup.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claims');
    cleanup.add(() => deleteAndWait(cluster, ['pod', '--all', '-n', ns]), 'delete the pods while the server runs');
    assert.equal(await dotExists(server, 'admin', 'apples'), false);
    await staticVolume(pv, 'apples');
    await cluster.kubectl(['apply', '-f', '-'], {
      input: podManifest({
        name: 'writer',
        namespace: ns,
        node: node.name,
        image: cluster.images.busybox.ref,
        command: ['sh', '-c', writeRandomScript('blob', true)],
        ...claimAtData('apples'),
      }),
    });
    await waitForPodPhase(cluster.kubectl, ns, 'writer', ['Running'], 180_000);
    const podHash = await podOutput('writer');
    assert.ok(await dotExists(server, 'admin', 'apples'), 'the dot was made on first use');
    assert.equal(await hashInNewCommit(server, 'admin', 'apples', 'blob'), podHash, 'the commit holds what the pod wrote');

    const fsId = await server.admin.call('Lookup', { Namespace: 'admin', Name: 'apples', Branch: '' });
    const uses = (await server.admin.call('BranchPublications', fsId)).Uses;
    assert.equal(uses.length, 1);
    assert.equal(uses[0]!.Kind, 'mount');
    assert.ok(
      uses[0]!.Target.startsWith(join(node.paths.kubeletRootDir, 'pods')) &&
        uses[0]!.Target.endsWith(`/volumes/dotmesh.io~dm/${pv}`),
      `the use is the kubelet's directory for the pod: ${uses[0]!.Target}`,
    );
    assert.ok(await isMountPoint(uses[0]!.Target), 'the kubelet’s directory is a bind mount of the dot');

    await deleteAndWait(cluster, ['pod', 'writer', '-n', ns]);
    await waitUnused(server, fsId, 'the kubelet unmounted the volume (the use ended)');
    assert.equal(await isMountPoint(uses[0]!.Target), false, 'no mount is left');
  });

  test('the server killed while a pod uses a dot: the pod still goes (the driver unbinds with no server), and the restarted server ends the use', async () => {
    const node = cluster.nodes[0]!;
    const pv = `flex-pears-${ns}`;
    cleanup.add(() => deleteAndWait(cluster, ['pv', pv]), 'delete the second static PV');
    cleanup.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claims');
    cleanup.add(() => deleteAndWait(cluster, ['pod', '--all', '-n', ns]), 'delete the pods while the server runs');
    await staticVolume(pv, 'pears');
    await cluster.kubectl(['apply', '-f', '-'], {
      input: podManifest({
        name: 'keeper',
        namespace: ns,
        node: node.name,
        image: cluster.images.busybox.ref,
        command: ['sh', '-c', writeRandomScript('blob', true)],
        ...claimAtData('pears'),
      }),
    });
    await waitForPodPhase(cluster.kubectl, ns, 'keeper', ['Running'], 180_000);
    const hash = await podOutput('keeper');
    const fsId = await server.admin.call('Lookup', { Namespace: 'admin', Name: 'pears', Branch: '' });
    const [use] = (await server.admin.call('BranchPublications', fsId)).Uses;
    assert.ok(use && (await isMountPoint(use.Target)));

    await server.kill9();
    await deleteAndWait(cluster, ['pod', 'keeper', '-n', ns]);
    assert.equal(await isMountPoint(use.Target), false, 'the driver unbound the volume with no server');
    assert.equal(existsSync(use.Target), false, 'the kubelet removed the directory');

    server = await server.restart();
    await waitFor(async () => (await server.admin.call('BranchPublications', fsId)).Uses.length === 0, {
      timeoutMs: 60_000,
      what: 'the restarted server ended the use the unmount left',
    });
    assert.equal(await hashInNewCommit(server, 'admin', 'pears', 'blob'), hash, 'the data is there');
  });

  /** A static PV `pv` for dot admin/<dot> and a PVC named after the dot, bound to it. */
  function staticVolume(pv: string, dot: string): Promise<void> {
    return staticFlexVolume(cluster, { pv, namespace: ns, claim: dot, dot });
  }

  /** The first line a pod wrote (a hash) once it printed `written`. */
  async function podOutput(pod: string): Promise<string> {
    const log = await waitFor(
      async () => {
        const out = (await cluster.kubectl(['logs', pod, '-n', ns])).stdout;
        return out.includes('written') ? out : undefined;
      },
      { timeoutMs: 60_000, what: `pod ${pod} wrote its data` },
    );
    const hash = log.trim().split('\n')[0]!;
    assert.match(hash, /^[0-9a-f]{64}$/);
    return hash;
  }
});
