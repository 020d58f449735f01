import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, listLoopDevicesFor, SERVER_BUNDLE, skipUnless } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

const skip = skipUnless(['root', 'btrfs', 'losetup']);

describe('dm cluster init / reset (built dm and dotmesh-server)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  before(async () => {
    c = await initCluster(cleanup);
  });
  after(async () => cleanup.run());

  test('init wrote the local remote, the password file and a private state dir', async () => {
    const config = JSON.parse(await readFile(join(c.home, '.dotmesh', 'config'), 'utf8'));
    assert.equal(config.CurrentRemote, 'local');
    assert.equal(config.Remotes.local.User, 'admin');
    assert.equal(config.Remotes.local.Port, c.port);
    assert.match(config.Remotes.local.ApiKey, /^[A-Z2-7]{52}====$/);
    assert.equal(statSync(join(c.home, '.dotmesh', 'config')).mode & 0o777, 0o600);
    assert.equal(statSync(join(c.home, '.dotmesh', 'admin-password.txt')).mode & 0o777, 0o400);
    assert.equal(statSync(join(c.poolDir, 'server')).mode & 0o777, 0o700);
    assert.ok(!existsSync(join(c.poolDir, 'server', 'initial-admin.json')), 'initial credentials consumed');
    const check = await fetch(`http://127.0.0.1:${c.checkPort}/check`);
    assert.equal(await check.text(), 'OK');
  });

  test('the main job: dot, file, commit, branch, reset, log', async () => {
    await c.ok(['init', 'demo']);
    const mnt = join(c.home, 'demo');
    await c.ok(['mount', 'demo', mnt]);
    await writeFile(join(mnt, 'hello.txt'), 'hello v1\n');
    const first = (await c.ok(['commit', '-m', 'first version'])).trim();
    assert.match(first, /^[0-9a-f-]{36}$/);
    await c.ok(['checkout', '-b', 'experiment']);
    await writeFile(join(mnt, 'hello.txt'), 'on the experiment\n');
    await c.ok(['commit', '-m', 'experiment']);
    await c.ok(['checkout', 'master']);
    assert.equal(await readFile(join(mnt, 'hello.txt'), 'utf8'), 'hello v1\n');
    await writeFile(join(mnt, 'hello.txt'), 'uncommitted\n');
    await c.ok(['reset', '--hard', 'HEAD']);
    assert.equal(await readFile(join(mnt, 'hello.txt'), 'utf8'), 'hello v1\n');
    const log = await c.ok(['log']);
    assert.match(
      log,
      /commit [0-9a-f-]{36}\nauthor: admin\ndate: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\ntype: dotmesh.initial\n\n {4}Initial commit\n/,
    );
    assert.ok(log.includes(`commit ${first}\n`));
    assert.match(await c.ok(['branch']), /^ {2}experiment\n\* master\n$/);
  });

  test('init while running says so; reset + init on the same pool keeps every dot, branch and commit', async () => {
    const again = await c.dm(c.initArgs());
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /Dotmesh is already running!/);
    const before = {
      list: await c.ok(['list', '-H']),
      master: await c.ok(['log']),
      branches: await c.ok(['--json', 'branch']),
      experiment: await c.ok(['--json', 'dot', 'show', 'demo']),
    };
    await c.ok(['cluster', 'reset', '--use-pool-dir', c.poolDir, '--server-bin', SERVER_BUNDLE]);
    assert.ok(existsSync(join(c.poolDir, 'dotmesh_data')), 'reset without --destroy-data keeps the pool');
    assert.equal((await c.dm(['list'])).code !== 0, true, 'no cluster after reset');
    await c.ok(c.initArgs());
    await c.ok(['switch', 'demo']);
    assert.equal(await c.ok(['list', '-H']), before.list);
    assert.equal(await c.ok(['log']), before.master);
    assert.equal(await c.ok(['--json', 'branch']), before.branches);
    assert.equal(await c.ok(['--json', 'dot', 'show', 'demo']), before.experiment);
    assert.equal((await listLoopDevicesFor(join(c.poolDir, 'dotmesh_data'))).length, 1);
  });

  test('reset --destroy-data removes the pool, its mount and its loop device', async () => {
    await c.ok(['cluster', 'reset', '--use-pool-dir', c.poolDir, '--destroy-data', '--server-bin', SERVER_BUNDLE]);
    assert.ok(!existsSync(join(c.poolDir, 'dotmesh_data')));
    assert.equal((await listLoopDevicesFor(join(c.poolDir, 'dotmesh_data'))).length, 0);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(join(c.poolDir, 'mnt')));
  });
});
