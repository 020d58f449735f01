import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Cleanup, freePorts, makeTempDir } from '@dotmesh/testkit';
import { runDm } from '../testing/run-dm.ts';
import { processAlive, which } from './system.ts';

/**
 * `dm cluster init` then `dm cluster reset` with a stand-in server (testing/fake-server.ts):
 * real files, a real detached process, real pings. Needs btrfs and mkfs.btrfs on the host only
 * because preflight checks them; skipped (with the reason) where they are missing.
 */
const fakeServer = fileURLToPath(new URL('../testing/fake-server.ts', import.meta.url));

async function hostSupportsPreflight(): Promise<string | false> {
  if (!/\bbtrfs$/m.test(await readFile('/proc/filesystems', 'utf8').catch(() => ''))) return 'btrfs not in /proc/filesystems';
  if (!(await which('mkfs.btrfs', process.env.PATH))) return 'mkfs.btrfs not installed';
  return false;
}

describe('dm cluster init/reset', async () => {
  const skip = await hostSupportsPreflight();
  const cleanup = new Cleanup();
  let dir = '';
  let port = 0;
  let checkPort = 0;
  let tlsPort = 0;
  const env = () => ({ HOME: join(dir, 'home'), PATH: process.env.PATH ?? '' });
  const initArgs = () => [
    'cluster',
    'init',
    '--use-pool-dir',
    join(dir, 'pool'),
    '--sparse',
    '--port',
    String(port),
    '--check-port',
    String(checkPort),
    // Every listener and path of its own: a real cluster may run on this host with the defaults.
    '--tls-port',
    String(tlsPort),
    '--docker-plugin-socket',
    'none',
    '--docker-socket',
    join(dir, 'no-docker.sock'),
    '--listen',
    '127.0.0.1',
    '--server-bin',
    fakeServer,
    '--no-systemd',
  ];
  before(async () => {
    dir = await makeTempDir('cluster', cleanup);
    [port, checkPort, tlsPort] = (await freePorts(3)) as [number, number, number];
    cleanup.add(async () => {
      const pid = Number.parseInt(await readFile(join(dir, 'pool', 'server', 'dotmesh-server.pid'), 'utf8').catch(() => ''), 10);
      if (pid > 0 && processAlive(pid)) process.kill(pid, 'SIGKILL');
    });
  });
  after(() => cleanup.run());

  it('refuses to run as a normal user', async () => {
    const run = await runDm(initArgs(), env(), [], 1000);
    assert.equal(run.code, 6);
    assert.match(run.stderr, /must run as root/);
  });

  it('starts the server, saves the local remote and the credentials', { skip }, async () => {
    const run = await runDm(initArgs(), env(), [], 0);
    assert.equal(run.stderr, '');
    assert.equal(run.code, 0);
    assert.match(run.stdout, /dotmesh-server is ready/);
    const stateDir = join(dir, 'pool', 'server');
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(stateDir, 'initial-admin.json'))).mode & 0o777, 0o600);
    const admin = JSON.parse(await readFile(join(stateDir, 'initial-admin.json'), 'utf8'));
    const serverConfig = JSON.parse(await readFile(join(stateDir, 'config.json'), 'utf8'));
    assert.equal(serverConfig.port, port);
    assert.equal(serverConfig.sparse, true);
    const config = JSON.parse(await readFile(join(dir, 'home', '.dotmesh', 'config'), 'utf8'));
    assert.equal(config.CurrentRemote, 'local');
    assert.deepEqual(
      { ...config.Remotes.local },
      {
        User: 'admin',
        Hostname: '127.0.0.1',
        Port: port,
        ApiKey: admin.apiKey,
        CurrentVolume: '',
        CurrentBranches: null,
        DefaultRemoteVolumes: null,
      },
    );
    const passwordFile = join(dir, 'home', '.dotmesh', 'admin-password.txt');
    assert.equal(await readFile(passwordFile, 'utf8'), admin.password);
    assert.equal((await stat(passwordFile)).mode & 0o777, 0o400);
    const list = await runDm(['list'], env());
    assert.equal(list.code, 0, list.stderr);
  });

  it('says the original text when run twice', { skip }, async () => {
    const run = await runDm(initArgs(), env(), [], 0);
    assert.equal(run.code, 9);
    assert.match(run.stderr, /^error: Dotmesh is already running!\n/);
  });

  it('reset stops the server and forgets the remote, keeping the pool dir', { skip }, async () => {
    const pid = Number.parseInt(await readFile(join(dir, 'pool', 'server', 'dotmesh-server.pid'), 'utf8'), 10);
    const run = await runDm(['cluster', 'reset', '--use-pool-dir', join(dir, 'pool')], env(), [], 0);
    assert.equal(run.stderr, '');
    assert.equal(run.code, 0);
    assert.match(run.stdout, new RegExp(`Stopped dotmesh-server \\(pid ${pid}, terminated\\)`));
    assert.equal(processAlive(pid), false);
    const config = JSON.parse(await readFile(join(dir, 'home', '.dotmesh', 'config'), 'utf8'));
    assert.deepEqual(config.Remotes, {});
    assert.equal(config.CurrentRemote, '');
    await assert.rejects(stat(join(dir, 'pool', 'server', 'config.json')));
    assert.ok((await stat(join(dir, 'pool'))).isDirectory());
  });
});
