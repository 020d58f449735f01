import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseServerConfigText } from '@dotmesh/rpc';
import { poolSizeOnVolume } from '@dotmesh/rpc/server-defaults';
import { Cleanup, makeTempDir } from '@dotmesh/testkit';
import { readRecoveryDir } from './etcd/recovery-dir.ts';
import { type KubernetesNodeOptions, parseKubernetesArgs, prepareKubernetesNode } from './kubernetes-node.ts';
import { filesystemBytes } from './pool/volume-growth.ts';

async function fixture(cleanup: Cleanup, join_?: Record<string, string>) {
  const dir = await makeTempDir('k8s-node', cleanup);
  await writeFile(join(dir, 'password'), 'pw-123\n');
  await writeFile(join(dir, 'key'), 'KEY456\n');
  if (join_) {
    await mkdir(join(dir, 'join'));
    for (const [k, v] of Object.entries(join_)) await writeFile(join(dir, 'join', k), `${v}\n`);
  }
  const argv = [
    '--node-name=node-1',
    '--advertise-address=10.9.0.12',
    `--pool-dir=${join(dir, 'pool')}`,
    '--pool-size=2G',
    `--admin-password-file=${join(dir, 'password')}`,
    `--admin-api-key-file=${join(dir, 'key')}`,
    '--etcd-bin=/usr/local/bin/etcd',
    ...(join_ ? [`--join-dir=${join(dir, 'join')}`] : []),
  ];
  return { dir, options: parseKubernetesArgs(argv) };
}

/** A pool volume after its first start, its state holding the CA key (as the first node's). */
async function volumeHoldingCaKey(dir: string, options: KubernetesNodeOptions) {
  const volume = join(dir, 'volume');
  await mkdir(volume, { recursive: true });
  const file = await prepareKubernetesNode({ ...options, poolVolumeDir: volume });
  const first = parseServerConfigText(await readFile(file, 'utf8'));
  await mkdir(join(first.stateDir, 'tls'), { recursive: true });
  await writeFile(join(first.stateDir, 'tls', 'ca-key.pem'), 'the CA key\n', { mode: 0o600 });
  return { volume, file, first };
}

const JOIN = {
  token: 'abcdef.0123456789abcdefghijklmnopqrstuv',
  address: '10.9.0.11:32609',
  'ca-hash': `sha256:${'a'.repeat(64)}`,
};

describe('serve-kubernetes: a node config written at the first start', () => {
  test('the first node: a managed etcd member, on its node address only, the admin from the Secret files', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const { dir, options } = await fixture(cleanup);
    const file = await prepareKubernetesNode(options);
    assert.equal(file, join(dir, 'pool', 'server', 'config.json'));
    const config = parseServerConfigText(await readFile(file, 'utf8'));
    assert.equal(config.listenHost, '10.9.0.12');
    assert.equal(config.advertiseAddress, '10.9.0.12');
    assert.equal(config.store, 'etcd');
    assert.deepEqual(config.etcdMember, { bin: '/usr/local/bin/etcd', clientPort: 42379, peerPort: 42380 });
    assert.equal(config.poolSizeBytes, 2 * 2 ** 30);
    assert.equal(config.join, null);
    assert.equal(config.dockerPluginSocket, null);
    assert.deepEqual(JSON.parse(await readFile(config.initialAdminFile, 'utf8')), { password: 'pw-123', apiKey: 'KEY456' });
    assert.equal((await stat(config.initialAdminFile)).mode & 0o777, 0o600);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    await assert.rejects(readFile(config.joinTokenFile));
  });

  test('a joining node gets the join target and its token; a later start keeps the config it has', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const { dir, options } = await fixture(cleanup, JOIN);
    const file = await prepareKubernetesNode(options);
    const config = parseServerConfigText(await readFile(file, 'utf8'));
    assert.deepEqual(config.join, { address: JOIN.address, caHash: JOIN['ca-hash'] });
    assert.equal((await readFile(config.joinTokenFile, 'utf8')).trim(), JOIN.token);
    // The server deletes the token once used; a restart must not write a new one or another config.
    await writeFile(file, (await readFile(file, 'utf8')).replace('"sparse": true', '"sparse": true, "nodeLeaseTtlSeconds": 11'));
    await writeFile(join(dir, 'join', 'token'), 'changed\n');
    assert.equal(await prepareKubernetesNode(options), file);
    assert.equal(parseServerConfigText(await readFile(file, 'utf8')).nodeLeaseTtlSeconds, 11);
  });

  test('bad input: missing flags, an incomplete join Secret, empty admin files', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    assert.throws(() => parseKubernetesArgs(['--node-name=x']), {
      code: 'INVALID_ARGUMENT',
      message: /missing --advertise-address/,
    });
    assert.throws(() => parseKubernetesArgs(['--bogus']), /Unknown option/);
    const partial = await fixture(cleanup, { token: JOIN.token });
    await assert.rejects(prepareKubernetesNode(partial.options), {
      code: 'INVALID_ARGUMENT',
      message: /lacks token, address or ca-hash/,
    });
    const empty = await fixture(cleanup);
    await writeFile(join(empty.dir, 'key'), '\n');
    await assert.rejects(prepareKubernetesNode(empty.options), {
      code: 'INVALID_ARGUMENT',
      message: /admin's password and API key/,
    });
  });

  test('a pool volume (pvcPerNode) holds the pool file, preallocated, and the state; the mount point stays in the pool dir', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const { dir, options } = await fixture(cleanup);
    const volume = join(dir, 'volume');
    await mkdir(volume);
    const file = await prepareKubernetesNode({ ...options, poolVolumeDir: volume });
    assert.equal(file, join(volume, 'server', 'config.json'));
    const config = parseServerConfigText(await readFile(file, 'utf8'));
    assert.equal(config.poolFile, join(volume, 'dotmesh_data'));
    assert.equal(config.stateDir, join(volume, 'server'));
    assert.equal(config.mountPoint, join(dir, 'pool', 'mnt'));
    assert.equal(config.sparse, false);
    assert.equal(config.releasePoolAtStop, true);
    assert.equal(config.poolSizeBytes, poolSizeOnVolume(await filesystemBytes(volume)), 'the pool follows its volume');
    const args = [
      '--node-name=n',
      '--advertise-address=10.0.0.1',
      '--pool-dir=/p',
      '--admin-password-file=/a',
      '--admin-api-key-file=/b',
    ];
    const parsed = parseKubernetesArgs([...args, '--pool-volume-dir=/backend-pv']);
    assert.deepEqual([parsed.poolVolumeDir, parsed.poolSizeBytes], ['/backend-pv', undefined], 'no --pool-size needed');
    assert.equal(parseKubernetesArgs([...args, '--pool-size=1G', '--pool-volume-dir=/v']).poolSizeBytes, undefined, 'ignored');
    assert.throws(() => parseKubernetesArgs(args), { code: 'INVALID_ARGUMENT', message: /missing --pool-size/ });
    await assert.rejects(prepareKubernetesNode({ ...options, poolVolumeDir: join(dir, 'absent') }), {
      code: 'INVALID_ARGUMENT',
      message: /pool volume directory .*absent does not exist/,
    });
    // The same node starting again keeps it; a node at another address without a join Secret
    // (and no CA key in the state) is refused, naming both, and nothing changes.
    const before = await readFile(file, 'utf8');
    assert.equal(await prepareKubernetesNode({ ...options, poolVolumeDir: volume }), file);
    const moved = { ...options, poolVolumeDir: volume, nodeName: 'node-9', advertiseAddress: '10.9.0.99' };
    await assert.rejects(prepareKubernetesNode(moved), {
      code: 'CONFLICT',
      message: /belongs to node node-1 at 10\.9\.0\.12; this is node node-9 at 10\.9\.0\.99, with no join Secret/,
    });
    assert.equal(await readFile(file, 'utf8'), before);
  });

  test('--etcd-move-wait-seconds: validated, written at the first start and taken by every later start (absent: the default)', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const { dir, options } = await fixture(cleanup);
    const args = ['--node-name=n', '--advertise-address=10.0.0.1', '--pool-dir=/p', '--pool-size=1G'];
    const more = ['--admin-password-file=/a', '--admin-api-key-file=/b'];
    assert.equal(parseKubernetesArgs([...args, ...more, '--etcd-move-wait-seconds=15']).etcdMoveWaitSeconds, 15);
    assert.equal(parseKubernetesArgs([...args, ...more]).etcdMoveWaitSeconds, undefined);
    for (const bad of ['', '0', '4', '3601', '1.5', '-1', 'abc', '1e2']) {
      assert.throws(() => parseKubernetesArgs([...args, ...more, `--etcd-move-wait-seconds=${bad}`]), {
        code: 'INVALID_ARGUMENT',
        message: /--etcd-move-wait-seconds .* must be a whole number of seconds from 5 to 3600/,
      });
    }
    const volume = join(dir, 'volume');
    await mkdir(volume);
    const file = await prepareKubernetesNode({ ...options, poolVolumeDir: volume, etcdMoveWaitSeconds: 15 });
    assert.equal(parseServerConfigText(await readFile(file, 'utf8')).etcdMoveWaitSeconds, 15);
    await prepareKubernetesNode({ ...options, poolVolumeDir: volume, etcdMoveWaitSeconds: 30 });
    assert.equal(
      parseServerConfigText(await readFile(file, 'utf8')).etcdMoveWaitSeconds,
      30,
      'a later start takes the new value',
    );
    await prepareKubernetesNode({ ...options, poolVolumeDir: volume });
    const config = parseServerConfigText(await readFile(file, 'utf8'));
    assert.equal(config.etcdMoveWaitSeconds, 120, 'the default once the flag is gone');
    assert.equal(config.nodeName, 'node-1', 'the rest of the config as it was');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  test('a pool volume adopted by a node at another address: the config takes its address and name, and it rejoins with the join Secret', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const { dir, options } = await fixture(cleanup, JOIN);
    const volume = join(dir, 'volume');
    await mkdir(volume);
    const file = await prepareKubernetesNode({ ...options, poolVolumeDir: volume });
    // The first start's join happened (the server deletes the token file once it joined).
    const first = parseServerConfigText(await readFile(file, 'utf8'));
    await rm(first.joinTokenFile);
    const poolDir = join(dir, 'pool-of-node-9');
    const moved = { ...options, poolVolumeDir: volume, nodeName: 'node-9', advertiseAddress: '10.9.0.99', poolDir };
    assert.equal(await prepareKubernetesNode(moved), file);
    const config = parseServerConfigText(await readFile(file, 'utf8'));
    assert.equal(
      config.mountPoint,
      join(poolDir, 'mnt'),
      'mounted under the new node’s pool directory, where its kubelet sees it',
    );
    assert.equal(config.advertiseAddress, '10.9.0.99');
    assert.equal(config.listenHost, '10.9.0.99');
    assert.equal(config.nodeName, 'node-9');
    assert.deepEqual(config.join, { address: JOIN.address, caHash: JOIN['ca-hash'] });
    assert.equal((await readFile(config.joinTokenFile, 'utf8')).trim(), JOIN.token);
    assert.equal((await stat(config.joinTokenFile)).mode & 0o777, 0o600);
    assert.equal(config.stateDir, first.stateDir, 'the same state: the same node');
    assert.equal(config.poolFile, first.poolFile);
  });

  test('a pool volume whose state holds the CA key (the first node) takes the new address without a join', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const { dir, options } = await fixture(cleanup);
    const { volume, file, first } = await volumeHoldingCaKey(dir, options);
    await rm(first.initialAdminFile);
    await prepareKubernetesNode({ ...options, poolVolumeDir: volume, nodeName: 'node-9', advertiseAddress: '10.9.0.99' });
    const config = parseServerConfigText(await readFile(file, 'utf8'));
    assert.equal(config.advertiseAddress, '10.9.0.99');
    assert.equal(config.nodeName, 'node-9');
    assert.equal(config.join, null);
    assert.ok(!existsSync(config.joinTokenFile), 'no token: it issues its certificates itself');
  });

  test('an etcd recovery: the directive journaled once; a pool to rejoin joins through its Secret even with the CA key', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const { dir, options } = await fixture(cleanup, JOIN);
    const { volume, file, first } = await volumeHoldingCaKey(dir, options);
    await rm(first.joinTokenFile);
    const journal = join(first.stateDir, 'etcd-recovery.json');
    // A moved CA holder told to rejoin, without its join Secret: refused, naming the recovery.
    const moved = { ...options, joinDir: undefined, poolVolumeDir: volume, nodeName: 'node-9', advertiseAddress: '10.9.0.99' };
    await assert.rejects(prepareKubernetesNode({ ...moved, etcdRecovery: { id: 'r1', role: 'rejoin' } }), {
      code: 'CONFLICT',
      message:
        /etcd recovery r1: this pool's etcd member joins the recovered cluster as a new member, and this pod has no join Secret/,
    });
    assert.deepEqual(JSON.parse(await readFile(journal, 'utf8')), { id: 'r1', role: 'rejoin', done: false });
    // With it: the join target and token, though the state holds the CA key.
    await prepareKubernetesNode({ ...moved, joinDir: options.joinDir, etcdRecovery: { id: 'r1', role: 'rejoin' } });
    const config = parseServerConfigText(await readFile(file, 'utf8'));
    assert.equal(config.advertiseAddress, '10.9.0.99');
    assert.deepEqual(config.join, { address: JOIN.address, caHash: JOIN['ca-hash'] });
    assert.equal((await readFile(config.joinTokenFile, 'utf8')).trim(), JOIN.token);
    // The same recovery never gets another role; a done step is not asked again.
    await assert.rejects(prepareKubernetesNode({ ...moved, etcdRecovery: { id: 'r1', role: 'force-new-cluster' } }), {
      code: 'CONFLICT',
      message: /etcd recovery r1 gave this pool the role rejoin/,
    });
    await writeFile(journal, JSON.stringify({ id: 'r1', role: 'rejoin', done: true }));
    await rm(config.joinTokenFile);
    await prepareKubernetesNode({ ...moved, joinDir: options.joinDir, etcdRecovery: { id: 'r1', role: 'rejoin' } });
    assert.deepEqual(JSON.parse(await readFile(journal, 'utf8')), { id: 'r1', role: 'rejoin', done: true });
    assert.ok(!existsSync(config.joinTokenFile), 'a done rejoin (same address now) joins no more');
  });

  test('the etcd recovery ConfigMap as mounted: this pool’s part from its member name; existing-pool-only never makes a new cluster', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const { dir, options } = await fixture(cleanup);
    const recoveryDir = join(dir, 'recovery');
    await mkdir(recoveryDir);
    const statusFile = join(dir, 'etcd-member.json');
    const write = async (files: Readonly<Record<string, string | undefined>>) => {
      await rm(recoveryDir, { recursive: true, force: true });
      await mkdir(recoveryDir);
      for (const [k, v] of Object.entries(files)) if (v !== undefined) await writeFile(join(recoveryDir, k), `${v}\n`);
    };
    assert.deepEqual(await readRecoveryDir(recoveryDir, statusFile), { existingPoolOnly: false });
    await write({ 'existing-pool-only': 'true', id: 'rmq3x9', from: 'node-b' });
    assert.deepEqual(await readRecoveryDir(recoveryDir, statusFile), { existingPoolOnly: true }, 'no member here: no part');
    await writeFile(statusFile, JSON.stringify({ name: 'node-b', voters: 3 }));
    assert.deepEqual((await readRecoveryDir(recoveryDir, statusFile)).step, { id: 'rmq3x9', role: 'force-new-cluster' });
    await writeFile(statusFile, JSON.stringify({ name: 'node-c', voters: 3 }));
    assert.deepEqual((await readRecoveryDir(recoveryDir, statusFile)).step, { id: 'rmq3x9', role: 'rejoin' });
    for (const bad of [{ id: 'rmq3x9' }, { from: 'node-b' }, { id: 'R1', from: 'node-b' }, { id: 'r1', from: '../x' }]) {
      await write(bad);
      await assert.rejects(readRecoveryDir(recoveryDir, statusFile), { code: 'INVALID_ARGUMENT' }, JSON.stringify(bad));
    }
    assert.equal(
      parseKubernetesArgs([
        ...'--node-name=n --advertise-address=10.0.0.1 --pool-dir=/p --pool-size=1G --admin-password-file=/a --admin-api-key-file=/b'.split(
          ' ',
        ),
        '--etcd-recovery-dir=/r',
      ]).etcdRecoveryDir,
      '/r',
    );
    await write({ 'existing-pool-only': 'true' });
    const volume = join(dir, 'volume');
    await assert.rejects(prepareKubernetesNode({ ...options, poolVolumeDir: volume, etcdRecoveryDir: recoveryDir }), {
      code: 'CONFLICT',
      message: /holds no pool of this cluster, and this server may only serve an existing one/,
    });
    assert.ok(!existsSync(join(volume, 'server', 'config.json')), 'no config written');
  });
});
