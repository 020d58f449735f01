import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { makeTempDir } from '@dotmesh/testkit';
import { base32, generateAdminCredentials } from './credentials.ts';
import { FREE_SPACE_MARGIN, type PreflightFacts, type PreflightPlan, preflight } from './preflight.ts';
import { resolveServerBin, serverCommand } from './server-process.ts';
import { portFree, runningPid } from './system.ts';
import { unitText } from './systemd.ts';

describe('credentials', () => {
  it('encodes base32 like Go StdEncoding (RFC 4648 vectors)', () => {
    const enc = (s: string) => base32(Buffer.from(s));
    assert.equal(enc(''), '');
    assert.equal(enc('f'), 'MY======');
    assert.equal(enc('fo'), 'MZXQ====');
    assert.equal(enc('foob'), 'MZXW6YQ=');
    assert.equal(enc('foobar'), 'MZXW6YTBOI======');
  });
  it('makes a 32-character password (20 bytes) and a 32-byte API key', () => {
    const c = generateAdminCredentials();
    assert.match(c.password, /^[A-Z2-7]{32}$/);
    assert.match(c.apiKey, /^[A-Z2-7]{52}====$/);
    assert.notEqual(generateAdminCredentials().apiKey, c.apiKey);
  });
});

describe('preflight', () => {
  const ok: PreflightFacts = {
    uid: 0,
    runningPid: null,
    btrfsInKernel: true,
    mkfsBtrfs: '/sbin/mkfs.btrfs',
    freeBytes: 100 * 2 ** 30,
    portsInUse: [],
    existingMountIsBtrfs: null,
  };
  const plan: PreflightPlan = {
    poolSizeBytes: 10 * 2 ** 30,
    existingMount: null,
    poolFile: '/p/dotmesh_data',
    port: 32607,
    checkPort: 32608,
  };
  const fail = (facts: Partial<PreflightFacts>, p: Partial<PreflightPlan> = {}) =>
    preflight({ ...ok, ...facts }, { ...plan, ...p });

  it('passes on a suitable host', () => assert.equal(fail({}), null));
  it('needs root', () => assert.match(fail({ uid: 1000 })?.message ?? '', /must run as root/));
  it('says the original text when already running', () => {
    const e = fail({ runningPid: 42, uid: 0 });
    assert.equal(e?.message, 'Dotmesh is already running!');
    assert.equal(e?.code, 'CONFLICT');
  });
  it('needs btrfs and mkfs.btrfs', () => {
    assert.match(fail({ btrfsInKernel: false })?.message ?? '', /btrfs is not available/);
    assert.match(fail({ mkfsBtrfs: null })?.hint ?? '', /btrfs-progs/);
    assert.equal(fail({ mkfsBtrfs: null }, { existingMount: '/mnt/b' }), null, 'not needed with an existing mount');
  });
  it('checks an existing mount is btrfs', () => {
    assert.match(fail({ existingMountIsBtrfs: false }, { existingMount: '/mnt/x' })?.message ?? '', /not a mounted btrfs/);
  });
  it('needs room for a preallocated pool', () => {
    assert.equal(fail({ freeBytes: plan.poolSizeBytes + FREE_SPACE_MARGIN }), null);
    const e = fail({ freeBytes: 5 * 2 ** 30 });
    assert.equal(e?.code, 'POOL_FULL');
    assert.match(e?.message ?? '', /not enough free space for a 10\.00 GiB pool at \/p\/dotmesh_data: 5\.00 GiB free/);
  });
  it('names a taken port and the flag to change it', () => {
    assert.match(fail({ portsInUse: [32608] })?.hint ?? '', /--check-port/);
    assert.equal(fail({ portsInUse: [32607] })?.message, 'port 32607 is already in use');
  });
});

describe('server process', () => {
  it('runs scripts under node and binaries directly', () => {
    assert.deepEqual(serverCommand('/x/server/src/main.ts', ['serve', '--config', 'c'], '/node'), [
      '/node',
      ['/x/server/src/main.ts', 'serve', '--config', 'c'],
    ]);
    assert.deepEqual(serverCommand('/usr/bin/dotmesh-server', ['serve'], '/node'), ['/usr/bin/dotmesh-server', ['serve']]);
  });

  it('resolves the server: flag, then env, then next to dm, then PATH', async () => {
    const dir = await makeTempDir('bin');
    try {
      await writeFile(join(dir, 'dotmesh-server.mjs'), '');
      const script = join(dir, 'dm.mjs');
      assert.equal(await resolveServerBin({ flag: '/f', env: { DOTMESH_SERVER_BIN: '/e' }, scriptPath: script }), '/f');
      assert.equal(await resolveServerBin({ flag: undefined, env: { DOTMESH_SERVER_BIN: '/e' }, scriptPath: script }), '/e');
      assert.equal(await resolveServerBin({ flag: undefined, env: {}, scriptPath: script }), join(dir, 'dotmesh-server.mjs'));
      await assert.rejects(resolveServerBin({ flag: undefined, env: { PATH: dir }, scriptPath: undefined }), {
        code: 'UNSUPPORTED',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('treats a stale pid file as not running', async () => {
    const dir = await makeTempDir('pid');
    try {
      const pidFile = join(dir, 'pid');
      assert.equal(await runningPid(pidFile), null);
      await writeFile(pidFile, `${process.pid}\n`);
      assert.equal(await runningPid(pidFile), process.pid);
      await writeFile(pidFile, '999999999\n');
      assert.equal(await runningPid(pidFile), null);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('detects a taken port', async () => {
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    assert.equal(await portFree('127.0.0.1', port), false);
    await new Promise<void>((r) => server.close(() => r()));
    assert.equal(await portFree('127.0.0.1', port), true);
  });
});

describe('systemd unit', () => {
  it('runs the server with its config and restarts it on failure', () => {
    const text = unitText([
      '/usr/bin/node',
      '/opt/dm/dotmesh-server.mjs',
      'serve',
      '--config',
      '/var/lib/dotmesh/server/config.json',
    ]);
    assert.match(
      text,
      /^ExecStart=\/usr\/bin\/node \/opt\/dm\/dotmesh-server\.mjs serve --config \/var\/lib\/dotmesh\/server\/config\.json$/m,
    );
    assert.match(text, /^Restart=on-failure$/m);
    assert.match(text, /^WantedBy=multi-user\.target$/m);
    assert.match(unitText(['/a b/node']), /^ExecStart="\/a b\/node"$/m);
  });
});
