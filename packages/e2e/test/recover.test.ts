import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, listLoopDevicesFor, makeTempDir, skipUnless, waitFor } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

/**
 * TestRecoverFromUnmountedDotOnMaster (ported): the server is killed, the pool is unmounted
 * and its loop device detached behind its back (as after a reboot); `dm cluster init` brings
 * everything back, on exactly one loop device, with the same credentials in ~/.dotmesh.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);

async function serverPid(c: TestCluster): Promise<number> {
  return Number((await readFile(join(c.poolDir, 'server', 'dotmesh-server.pid'), 'utf8')).trim());
}

describe('TestRecoverFromUnmountedDotOnMaster (ported)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let mnt: string;
  before(async () => {
    c = await initCluster(cleanup);
    mnt = await makeTempDir('mnt-', cleanup);
  });
  after(async () => cleanup.run());

  test('FilesystemRemountedOnRestart', async () => {
    await c.ok(['init', 'survivor']);
    await c.ok(['mount', 'survivor', join(mnt, 's')]);
    await writeFile(join(mnt, 's', 'data'), 'precious');
    await c.ok(['commit', '-m', 'precious']);
    await writeFile(join(mnt, 's', 'dirty'), 'uncommitted but written');
    const pid = await serverPid(c);
    process.kill(pid, 'SIGKILL');
    await waitFor(() => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    await c.ok(c.initArgs());
    assert.equal(await readFile(join(mnt, 's', 'data'), 'utf8'), 'precious');
    assert.equal(await readFile(join(mnt, 's', 'dirty'), 'utf8'), 'uncommitted but written');
    assert.match(await c.ok(['log']), /precious/);
  });

  test('RecoverFromUnmountedDotOnMaster', async () => {
    await c.ok([
      'cluster',
      'reset',
      '--use-pool-dir',
      c.poolDir,
      '--server-bin',
      join(import.meta.dirname, '../../../dist/dotmesh-server.mjs'),
    ]);
    execFileSync('umount', [join(c.poolDir, 'mnt')]);
    for (const d of await listLoopDevicesFor(join(c.poolDir, 'dotmesh_data'))) execFileSync('losetup', ['-d', d.name]);
    assert.equal((await listLoopDevicesFor(join(c.poolDir, 'dotmesh_data'))).length, 0);
    await c.ok(c.initArgs());
    await c.ok(['switch', 'survivor']);
    assert.equal(await readFile(join(mnt, 's', 'data'), 'utf8'), 'precious');
    assert.match(await c.ok(['log']), /precious/);
    assert.equal((await listLoopDevicesFor(join(c.poolDir, 'dotmesh_data'))).length, 1);
    await c.ok(['commit', '-m', 'after recovery']);
  });
});
