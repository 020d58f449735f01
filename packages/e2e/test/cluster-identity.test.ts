import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc';
import { probeCertificate } from '@dotmesh/rpc/tls';
import { Cleanup, listLoopDevicesFor, makeTempDir, runDm, SERVER_BUNDLE, skipUnless, waitFor } from '@dotmesh/testkit';
import { initCluster, serverWithVersion, type TestCluster } from './cluster-harness.ts';

/**
 * One identity for the life of a cluster (built dm and dotmesh-server): after a kill -9 and
 * `dm cluster init` with the same flags, `dm cluster stop` + `start`, a reboot (pool unmounted,
 * loop device gone) + `dm cluster start`, and `dm cluster upgrade`, the admin's API key and
 * password, a user made with RegisterNewUser, the https remotes another HOME pinned, and the
 * TLS fingerprint all keep working, unchanged.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);
/** The version in @dotmesh/server's package.json, which the built server must report. */
const serverPackage = JSON.parse(readFileSync(join(import.meta.dirname, '../../server/package.json'), 'utf8')) as {
  version: string;
};

interface Identity {
  apiKey: string;
  password: string;
  fingerprint: string;
  userKey: string;
}

/** Is the process there and not a zombie (its new parent, PID 1, may reap it a little later)? */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

describe('one identity for the life of a cluster', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let far: string;
  let id: Identity;
  const pidFile = () => join(c.poolDir, 'server', 'dotmesh-server.pid');
  const serverPid = async () => Number((await readFile(pidFile(), 'utf8')).trim());
  const farDm = (args: readonly string[], key = '') => runDm(args, { home: far, env: { DOTMESH_PASSWORD: key } });
  const client = (user: string, secret: string) =>
    new DotmeshClient({ url: `http://127.0.0.1:${c.port}/rpc`, user, apiKey: secret });

  async function killServer(): Promise<void> {
    const pid = await serverPid();
    process.kill(pid, 'SIGKILL');
    await waitFor(() => !alive(pid), { what: `pid ${pid} gone` });
  }

  /** Every credential and pin made before still works, and nothing was replaced. */
  async function assertSameIdentity(after: string): Promise<void> {
    assert.equal(await client('admin', id.apiKey).call('Ping', {}), true, `${after}: the admin API key`);
    assert.equal(await client('admin', id.password).call('Ping', {}), true, `${after}: the admin password`);
    assert.equal((await client('carol', id.userKey).call('CurrentUser', null)).Name, 'carol', `${after}: carol's key`);
    assert.equal(await c.apiKey(), id.apiKey, `${after}: the local remote keeps its key`);
    assert.equal(await readFile(join(c.home, '.dotmesh', 'admin-password.txt'), 'utf8'), id.password);
    assert.equal((await probeCertificate('127.0.0.1', c.tlsPort)).fingerprint, id.fingerprint, `${after}: the TLS certificate`);
    for (const remote of ['hub', 'carol']) {
      assert.equal((await farDm(['remote', 'switch', remote])).code, 0);
      const list = await farDm(['list', '-H']);
      assert.equal(list.code, 0, `${after}: the https remote ${remote} of another HOME: ${list.stderr}`);
      if (remote === 'hub') assert.match(list.stdout, /^lasting\t/m);
    }
    assert.doesNotMatch(await c.log(), /replaced the admin user/);
  }

  before(async () => {
    c = await initCluster(cleanup);
    far = await makeTempDir('home-far-', cleanup);
    const password = await readFile(join(c.home, '.dotmesh', 'admin-password.txt'), 'utf8');
    const apiKey = await c.apiKey();
    const admin = client('admin', apiKey);
    await admin.call('RegisterNewUser', { Name: 'carol', Email: 'carol@example.com', Password: 'carol-password' });
    const userKey = (await client('carol', 'carol-password').call('GetApiKey', null)).ApiKey;
    const fingerprint = new X509Certificate(await readFile(join(c.poolDir, 'server', 'tls', 'server.pem'))).fingerprint256;
    id = { apiKey, password, fingerprint, userKey };
    const target = (user: string) => `${user}@127.0.0.1:${c.tlsPort}`;
    for (const [name, user, key] of [
      ['carol', 'carol', userKey],
      ['hub', 'admin', apiKey],
    ] as const) {
      const add = await farDm(['remote', 'add', name, target(user), '--trust-fingerprint', fingerprint], key);
      assert.equal(add.code, 0, add.stderr);
    }
    await c.ok(['init', 'lasting']);
    await c.ok(['mount', 'lasting', join(c.home, 'lasting')]);
    await writeFile(join(c.home, 'lasting', 'data'), 'committed before everything');
    await c.ok(['commit', '-m', 'before everything']);
  });
  after(async () => cleanup.run());

  test('the server reports the version of its package', async () => {
    assert.equal(execFileSync(process.execPath, [SERVER_BUNDLE, 'version'], { encoding: 'utf8' }).trim(), serverPackage.version);
    const v = JSON.parse(await c.ok(['--json', 'version'])) as { server: { version: string } };
    assert.equal(v.server.version, serverPackage.version);
  });

  test('kill -9, then dm cluster init with the same flags: the same keys, users, pins', async () => {
    await killServer();
    const out = await c.ok(c.initArgs());
    await assertSameIdentity('init after kill -9');
    assert.match(out, /keeps its admin password, API keys and users/);
    assert.match(out, new RegExp(`start it with 'dm cluster start --use-pool-dir ${c.poolDir}'`));
    assert.doesNotMatch(await c.log(), /updated the admin user/);
    assert.match(await c.log(), /the initial credentials only seed a store without one/);
    assert.ok(!existsSync(join(c.poolDir, 'server', 'initial-admin.json')), 'the unused seed is not left behind');
    assert.equal(await readFile(join(c.home, 'lasting', 'data'), 'utf8'), 'committed before everything');
  });

  test('dm cluster stop waits for the server to end and keeps the pool mounted; dm cluster start brings it back', async () => {
    const pid = await serverPid();
    const stop = await c.ok(['cluster', 'stop', '--use-pool-dir', c.poolDir]);
    assert.match(stop, new RegExp(`Stopped dotmesh-server \\(pid ${pid}, terminated\\)`));
    assert.equal(alive(pid), false, 'stop returns once the server is gone');
    assert.ok(!existsSync(pidFile()), 'a graceful stop removes the pid file');
    assert.ok((await readFile('/proc/self/mountinfo', 'utf8')).includes(join(c.poolDir, 'mnt')), 'the pool stays mounted');
    assert.equal(await readFile(join(c.home, 'lasting', 'data'), 'utf8'), 'committed before everything');
    assert.notEqual((await c.dm(['list'])).code, 0, 'no server');
    assert.match(await c.ok(['cluster', 'stop', '--use-pool-dir', c.poolDir]), /dotmesh-server was not running\./);

    const start = await c.ok(['cluster', 'start', '--use-pool-dir', c.poolDir]);
    assert.match(start, new RegExp(`dotmesh-server ${serverPackage.version.replaceAll('.', '\\.')} is ready`));
    assert.match(start, new RegExp(`fingerprint ${id.fingerprint}`));
    await assertSameIdentity('stop + start');
    assert.match(await c.ok(['cluster', 'start', '--use-pool-dir', c.poolDir]), /running already/);
  });

  test('a reboot without systemd (server gone, pool unmounted, loop device detached): dm cluster start', async () => {
    await killServer();
    execFileSync('umount', [join(c.poolDir, 'mnt')]);
    for (const d of await listLoopDevicesFor(join(c.poolDir, 'dotmesh_data'))) execFileSync('losetup', ['-d', d.name]);
    await c.ok(['cluster', 'start', '--use-pool-dir', c.poolDir]);
    assert.equal((await listLoopDevicesFor(join(c.poolDir, 'dotmesh_data'))).length, 1);
    await assertSameIdentity('reboot + start');
    assert.match(await c.ok(['log']), /before everything/);
  });

  test('dm cluster init with only some flags keeps the rest of the config, hand edits included', async () => {
    await c.ok(['cluster', 'grow', '--pool-size', '2G']);
    await c.ok(['cluster', 'stop', '--use-pool-dir', c.poolDir]);
    const configFile = join(c.poolDir, 'server', 'config.json');
    const edited = { ...JSON.parse(await readFile(configFile, 'utf8')), transferAttempts: 7 };
    await writeFile(configFile, JSON.stringify(edited, null, 2));
    // Every port and socket flag is given (a test never risks the default ones); --pool-size and --sparse are not.
    const flags = c.initArgs().filter((a, i, all) => a !== '--sparse' && a !== '--pool-size' && all[i - 1] !== '--pool-size');
    await c.ok(flags);
    const written = JSON.parse(await readFile(configFile, 'utf8')) as {
      sparse: boolean;
      poolSizeBytes: number;
      transferAttempts: number;
    };
    assert.deepEqual(
      { sparse: written.sparse, poolSizeBytes: written.poolSizeBytes, transferAttempts: written.transferAttempts },
      { sparse: true, poolSizeBytes: 2 ** 31, transferAttempts: 7 },
    );
    await assertSameIdentity('init with fewer flags');
  });

  test('dm cluster upgrade keeps it all, and a later start runs the upgraded server, never an older one', async () => {
    const newer = await serverWithVersion(await makeTempDir('bins-', cleanup), '9.0.0');

    assert.match(await c.ok(['cluster', 'upgrade', '--use-pool-dir', c.poolDir, '--server-bin', newer]), /to 9\.0\.0/);
    await assertSameIdentity('upgrade');
    await c.ok(['cluster', 'stop', '--use-pool-dir', c.poolDir]);
    const older = await c.dm(['cluster', 'start', '--use-pool-dir', c.poolDir, '--server-bin', SERVER_BUNDLE]);
    assert.equal(older.code, 9, older.stderr);
    assert.match(older.stderr, /Refusing to run dotmesh-server \S+ \(.*\): this cluster last ran 9\.0\.0/);
    assert.match(await c.ok(['cluster', 'start', '--use-pool-dir', c.poolDir]), /dotmesh-server 9\.0\.0 is ready/);
    const v = JSON.parse(await c.ok(['--json', 'version'])) as { server: { version: string } };
    assert.equal(v.server.version, '9.0.0');
    await assertSameIdentity('upgrade + stop + start');
  });

  test('--new-admin-credentials replaces the admin password and API key (and only those)', async () => {
    await c.ok(['cluster', 'stop', '--use-pool-dir', c.poolDir]);
    await c.ok([
      ...c.initArgs().filter((a, i, all) => a !== '--server-bin' && all[i - 1] !== '--server-bin'),
      '--new-admin-credentials',
    ]);
    const key = await c.apiKey();
    assert.notEqual(key, id.apiKey);
    assert.equal(await client('admin', key).call('Ping', {}), true);
    await assert.rejects(client('admin', id.apiKey).call('Ping', {}), /Permission denied|UNAUTHENTICATED|401/);
    assert.equal((await client('carol', id.userKey).call('CurrentUser', null)).Name, 'carol', 'other users keep their keys');
    assert.equal((await probeCertificate('127.0.0.1', c.tlsPort)).fingerprint, id.fingerprint);
    assert.match(await c.log(), /replaced the admin user's password and API key/);
  });
});
