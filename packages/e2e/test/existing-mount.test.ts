import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, freePorts, makeTempDir, runDm, SERVER_BUNDLE, skipUnless } from '@dotmesh/testkit';

/**
 * `dm cluster init --use-existing-mount DIR`: a user's own btrfs filesystem is used as is —
 * never reformatted, never quota-enabled, never unmounted or destroyed by `dm cluster reset`.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);

describe('dm cluster init on an existing btrfs mount', { skip }, () => {
  const cleanup = new Cleanup();
  let fsDir: string;
  let poolDir: string;
  let home: string;
  let ports: number[];
  const args = () => [
    'cluster',
    'init',
    '--use-existing-mount',
    fsDir,
    '--use-pool-dir',
    poolDir,
    '--port',
    String(ports[0]),
    '--check-port',
    String(ports[1]),
    '--tls-port',
    String(ports[2]),
    '--listen',
    '127.0.0.1',
    '--no-systemd',
    '--server-bin',
    SERVER_BUNDLE,
    '--docker-plugin-socket',
    'none',
    '--docker-socket',
    join(poolDir, 'no-docker.sock'),
  ];
  before(async () => {
    const dir = await makeTempDir('userfs-', cleanup);
    home = await makeTempDir('home-', cleanup);
    poolDir = await makeTempDir('state-', cleanup);
    const img = join(dir, 'user.img');
    fsDir = join(dir, 'mnt');
    execFileSync('truncate', ['-s', '1G', img]);
    execFileSync('mkfs.btrfs', ['-q', img]);
    execFileSync('mkdir', ['-p', fsDir]);
    const loop = execFileSync('losetup', ['-f', '--show', img], { encoding: 'utf8' }).trim();
    cleanup.add(() => execFileSync('losetup', ['-d', loop]));
    execFileSync('mount', ['-o', 'noatime', loop, fsDir]);
    cleanup.add(() => execFileSync('umount', [fsDir]));
    await writeFile(join(fsDir, 'users-own-file'), 'keep me');
    ports = await freePorts(3);
    cleanup.add(() => runDm(['cluster', 'reset', '--use-pool-dir', poolDir, '--server-bin', SERVER_BUNDLE], { home }));
  });
  after(async () => cleanup.run());

  test('dots live on the user filesystem; quotas stay off; reset leaves it mounted and intact', async () => {
    const init = await runDm(args(), { home });
    assert.equal(init.code, 0, init.stderr);
    assert.equal((await runDm(['init', 'onuserfs'], { home })).code, 0);
    assert.equal((await runDm(['commit', '-m', 'hello'], { home })).code, 0);
    assert.ok(existsSync(join(fsDir, 'pool.json')), 'the pool is described on the user filesystem');
    const quota = execFileSync('sh', ['-c', `btrfs qgroup show ${fsDir} 2>&1 || true`], { encoding: 'utf8' });
    assert.match(quota, /quotas not enabled|not enabled/i);
    const destroy = await runDm(
      ['cluster', 'reset', '--use-pool-dir', poolDir, '--destroy-data', '--server-bin', SERVER_BUNDLE],
      { home },
    );
    assert.notEqual(destroy.code, 0, 'an existing mount is never destroyed');
    assert.match(destroy.stderr, /existing btrfs mount/);
    assert.equal(await readFile(join(fsDir, 'users-own-file'), 'utf8'), 'keep me');
    assert.match(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(` ${fsDir} `));
    const again = await runDm(args(), { home });
    assert.equal(again.code, 0, again.stderr);
    assert.match((await runDm(['log'], { home })).stdout, /hello/);
  });
});
