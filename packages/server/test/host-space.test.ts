import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { Cleanup, makeTempDir, type ServerProcess, skipUnless, startServerProcess, waitFor } from '@dotmesh/testkit';

/**
 * A sparse pool on a host filesystem that fills up (a small tmpfs here): before the host runs
 * out, the server makes the pool read-only and refuses writes with POOL_FULL; committed data
 * stays readable; deletes still work; when space comes back, writes resume by themselves.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);

describe('sparse pool on a filling host', { skip }, () => {
  const cleanup = new Cleanup();
  let s: ServerProcess;
  let host: string;
  before(async () => {
    host = await makeTempDir('hostfs-', cleanup);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=400m', 'tmpfs', host]);
    cleanup.add(() => execFileSync('umount', ['-l', host]));
    const dir = join(host, 'pool');
    await mkdir(dir);
    s = await startServerProcess({
      cleanup,
      dir,
      poolSize: '1G',
      extraConfig: { hostFreeReserveBytes: '120M', hostCheckIntervalMs: 100 },
    });
  });
  after(async () => cleanup.run());

  test('writes are refused before the host fills, and resume after', async () => {
    const path = await s.admin.call('Procure', { Namespace: 'admin', Name: 'keep', Subdot: '' });
    await writeFile(join(path, 'safe.txt'), 'committed before the host filled');
    const committed = await s.admin.call('Commit', {
      Namespace: 'admin',
      Name: 'keep',
      Branch: '',
      Message: 'safe',
      Metadata: {},
    });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'spare' });

    const filler = join(host, 'filler');
    execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=330', 'status=none']);
    await waitFor(
      async () => {
        try {
          await s.admin.call('Commit', { Namespace: 'admin', Name: 'keep', Branch: '', Message: 'probe', Metadata: {} });
          return false;
        } catch (e) {
          return e instanceof DotmeshError && e.code === 'POOL_FULL';
        }
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    await assert.rejects(s.admin.call('Create', { Namespace: 'admin', Name: 'new' }), /host filesystem under the pool has only/);
    await assert.rejects(writeFile(join(path, 'more.txt'), 'x'), /EROFS|read-only/);
    // Committed data is intact and readable; the server keeps serving.
    const commits = await s.admin.call('Commits', { Namespace: 'admin', Name: 'keep', Branch: '' });
    assert.ok(commits.some((c) => c.Id === committed));
    // Deletes still work on a full host.
    assert.equal(await s.admin.call('Delete', { Namespace: 'admin', Name: 'spare' }), true);

    await rm(filler);
    await waitFor(
      async () => {
        try {
          return await s.admin.call('Commit', { Namespace: 'admin', Name: 'keep', Branch: '', Message: 'after', Metadata: {} });
        } catch {
          return false;
        }
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    await writeFile(join(path, 'more.txt'), 'writable again');
  });
});
