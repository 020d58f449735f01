import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Cleanup, freePorts, makeTempDir, makeTestCa } from '@dotmesh/testkit';
import { runDm } from '../testing/run-dm.ts';
import { installClusterCa } from './cluster-ca.ts';
import { preflight } from './preflight.ts';

/** `dm cluster init`'s flags for a node of a cluster of several nodes (the temporary CA flags). */
describe('dm cluster init: a node of several', () => {
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  it('installs the cluster CA in <stateDir>/tls/ (key 0600, dir 0700); says whether it changed', async () => {
    const dir = await makeTempDir('cluster-ca', cleanup);
    const ca = await makeTestCa(dir, 'cluster one');
    const stateDir = join(dir, 'state');
    assert.deepEqual(await installClusterCa(stateDir, { cert: ca.caCert, key: ca.caKey }), { changed: true });
    assert.deepEqual(await readFile(join(stateDir, 'tls', 'ca.pem')), await readFile(ca.caCert));
    assert.deepEqual(await readFile(join(stateDir, 'tls', 'ca-key.pem')), await readFile(ca.caKey));
    assert.equal((await stat(join(stateDir, 'tls', 'ca-key.pem'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(stateDir, 'tls'))).mode & 0o777, 0o700);
    assert.deepEqual(await installClusterCa(stateDir, { cert: ca.caCert, key: ca.caKey }), { changed: false });
  });

  it('refuses a certificate that is no CA, a key of another CA and unreadable files, writing nothing', async () => {
    const dir = await makeTempDir('cluster-ca', cleanup);
    const one = await makeTestCa(join(dir), 'cluster one');
    const leaf = await one.sign('leaf', '/CN=leaf', 'basicConstraints=critical,CA:FALSE\n');
    const otherDir = await makeTempDir('cluster-ca', cleanup);
    const two = await makeTestCa(otherDir, 'cluster two');
    const stateDir = join(dir, 'state');
    await assert.rejects(installClusterCa(stateDir, { cert: leaf.cert, key: leaf.key }), /is not a CA certificate/);
    await assert.rejects(installClusterCa(stateDir, { cert: one.caCert, key: two.caKey }), /is not the private key of/);
    await assert.rejects(installClusterCa(stateDir, { cert: join(dir, 'nope.pem'), key: one.caKey }), /cannot read/);
    await assert.rejects(installClusterCa(stateDir, { cert: one.caKey, key: one.caKey }), /is not a PEM certificate/);
    await assert.rejects(stat(join(stateDir, 'tls', 'ca.pem')), { code: 'ENOENT' });
  });

  it('the flags: the CA flags go together; a cluster port needs etcd; the CA flags need a cluster port', async () => {
    const home = await makeTempDir('cli', cleanup);
    const pool = await makeTempDir('pool', cleanup);
    // Every failure comes before anything starts; its own ports and paths all the same.
    const [port, checkPort] = (await freePorts(2)) as [number, number];
    const own = ['--port', String(port), '--check-port', String(checkPort), '--tls-port', '0'];
    const docker = ['--docker-plugin-socket', 'none', '--docker-socket', join(pool, 'no-docker.sock')];
    const init = (args: string[]) =>
      runDm(['cluster', 'init', '--use-pool-dir', pool, ...own, ...docker, ...args], { HOME: home }, [], 0);
    const half = await init(['--cluster-ca-cert', '/x.pem']);
    assert.equal(half.stderr, 'error: --cluster-ca-cert and --cluster-ca-key go together\n');
    const noEtcd = await init(['--cluster-port', '4000']);
    assert.match(
      noEtcd.stderr,
      /error: a node of a cluster of several nodes \(--cluster-port\) needs the shared store\nhint: give --store etcd/,
    );
    const caOnly = await init(['--cluster-ca-cert', '/x.pem', '--cluster-ca-key', '/x-key.pem']);
    assert.match(caOnly.stderr, /--cluster-ca-cert and --cluster-ca-key are for a node of a cluster of several nodes/);
    const badAddress = await init(['--store', 'etcd', '--etcd-endpoints', 'http://127.0.0.1:1', '--advertise-address', 'nope']);
    assert.match(badAddress.stderr, /advertiseAddress must be an IP address/);
    for (const r of [half, noEtcd, caOnly, badAddress]) assert.notEqual(r.code, 0);
  });

  it('preflight names --cluster-port when the node-to-node port is taken', () => {
    const facts = {
      uid: 0,
      runningPid: null,
      btrfsInKernel: true,
      mkfsBtrfs: '/sbin/mkfs.btrfs',
      freeBytes: null,
      portsInUse: [32609],
      existingMountIsBtrfs: null,
    };
    const plan = { poolSizeBytes: 2 ** 30, existingMount: null, poolFile: '/p/d', port: 32607, checkPort: 32608, tlsPort: 0 };
    const e = preflight(facts, { ...plan, clusterPort: 32609 });
    assert.equal(e?.code, 'CONFLICT');
    assert.match(e?.hint ?? '', /--cluster-port/);
    assert.equal(preflight(facts, { ...plan, clusterPort: 0 }), null);
  });
});
