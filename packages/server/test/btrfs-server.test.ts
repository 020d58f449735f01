import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  listLoopDevicesFor,
  type ServerProcess,
  STORE_KINDS,
  type StoreKind,
  skipUnless,
  startServerProcess,
  storeOptionsFor,
} from '@dotmesh/testkit';

const skipFor = (store: StoreKind) => skipUnless(['root', 'btrfs', 'losetup', ...(store === 'etcd' ? (['etcd'] as const) : [])]);

for (const store of STORE_KINDS) {
  describe(`dotmesh-server on a real btrfs pool (${store} store)`, { skip: skipFor(store) }, () => {
    const cleanup = new Cleanup();
    let s: ServerProcess;
    before(async () => {
      s = await startServerProcess({ cleanup, ...(await storeOptionsFor(store, cleanup)) });
    });
    after(async () => cleanup.run());

    test('Procure gives a path where written data is committed, branched and rolled back', async () => {
      const path = await s.admin.call('Procure', { Namespace: 'admin', Name: 'data', Subdot: '' });
      await writeFile(join(path, 'f.txt'), 'v1');
      const c1 = await s.admin.call('Commit', { Namespace: 'admin', Name: 'data', Branch: '', Message: 'v1', Metadata: {} });
      const fsId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'data', Branch: '' });
      assert.equal((await s.admin.call('Get', fsId)).DirtyBytes, 0, 'clean right after commit');
      await writeFile(join(path, 'f.txt'), 'v2');
      assert.ok((await s.admin.call('Get', fsId)).DirtyBytes > 0, 'dirty right after a write');
      await s.admin.call('Commit', { Namespace: 'admin', Name: 'data', Branch: '', Message: 'v2', Metadata: {} });
      await s.admin.call('Branch', {
        Namespace: 'admin',
        Name: 'data',
        SourceBranch: 'master',
        NewBranchName: 'old',
        SourceCommitId: c1,
      });
      await s.admin.call('Rollback', { Namespace: 'admin', Name: 'data', Branch: '', SnapshotId: c1 });
      assert.equal(await readFile(join(path, 'f.txt'), 'utf8'), 'v1');
      await s.admin.call('SwitchContainers', { Namespace: 'admin', Name: 'data', NewBranchName: 'old' });
      assert.equal(await readFile(join(path, 'f.txt'), 'utf8'), 'v1');
      await writeFile(join(path, 'f.txt'), 'on old');
      await s.admin.call('SwitchContainers', { Namespace: 'admin', Name: 'data', NewBranchName: '' });
      assert.equal(await readFile(join(path, 'f.txt'), 'utf8'), 'v1');
    });

    test('restart, then stop + unmount + detach + start: everything is back on exactly one loop device', async () => {
      const before = await s.admin.call('AllDotsAndBranches', null);
      s = await (async () => {
        await s.stop();
        return s.restart();
      })();
      assert.deepEqual(await s.admin.call('AllDotsAndBranches', null), before);
      await s.stop();
      const { execFileSync } = await import('node:child_process');
      execFileSync('umount', [join(s.dir, 'mnt')]);
      for (const d of await listLoopDevicesFor(join(s.dir, 'dotmesh_data'))) execFileSync('losetup', ['-d', d.name]);
      s = await s.restart();
      assert.deepEqual(await s.admin.call('AllDotsAndBranches', null), before);
      assert.equal((await listLoopDevicesFor(join(s.dir, 'dotmesh_data'))).length, 1);
    });

    test('a second server on the same pool refuses to start', async () => {
      const { spawnSync } = await import('node:child_process');
      const second = spawnSync(
        process.execPath,
        [join(import.meta.dirname, '../src/bin.ts'), 'serve', '--config', s.configFile],
        {
          encoding: 'utf8',
          timeout: 30_000,
        },
      );
      assert.equal(second.status, 1);
      assert.match(second.stderr, /already using the pool/);
      assert.equal(await s.admin.call('Ping', null), true);
    });
  });
}

for (const store of STORE_KINDS) {
  describe(`rollback and checkout refuse while something Dotmesh cannot stop uses the live state (${store} store)`, {
    skip: skipFor(store),
  }, () => {
    const cleanup = new Cleanup();
    let s: ServerProcess;
    before(async () => {
      s = await startServerProcess({ cleanup, ...(await storeOptionsFor(store, cleanup)) });
    });
    after(async () => cleanup.run());

    test('a process with its cwd in the dot blocks Rollback and SwitchContainers with IN_USE', async () => {
      const { spawn } = await import('node:child_process');
      const path = await s.admin.call('Procure', { Namespace: 'admin', Name: 'busy', Subdot: '' });
      await writeFile(join(path, 'f'), 'one');
      const one = await s.admin.call('Commit', { Namespace: 'admin', Name: 'busy', Branch: '', Message: 'one', Metadata: {} });
      await s.admin.call('Branch', {
        Namespace: 'admin',
        Name: 'busy',
        SourceBranch: 'master',
        NewBranchName: 'other',
        SourceCommitId: one,
      });
      const sleeper = spawn('sleep', ['300'], { cwd: path, stdio: 'ignore' });
      cleanup.add(() => sleeper.kill('SIGKILL'));
      await new Promise((r) => sleeper.once('spawn', r));
      await assert.rejects(
        s.admin.call('Rollback', { Namespace: 'admin', Name: 'busy', Branch: '', SnapshotId: one }),
        (e: Error & { code?: string }) => e.code === 'IN_USE' && new RegExp(`process ${sleeper.pid} \\(sleep\\)`).test(e.message),
      );
      await assert.rejects(
        s.admin.call('SwitchContainers', { Namespace: 'admin', Name: 'busy', NewBranchName: 'other' }),
        (e: Error & { code?: string }) => e.code === 'IN_USE',
      );
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
      await s.admin.call('Rollback', { Namespace: 'admin', Name: 'busy', Branch: '', SnapshotId: one });
      await s.admin.call('SwitchContainers', { Namespace: 'admin', Name: 'busy', NewBranchName: 'other' });
    });
  });
}
