import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { Cleanup, makeTempDir, type ServerProcess, skipUnless, startServerProcess, waitFor } from '@dotmesh/testkit';

/**
 * R6, a full pool: a 400 MiB pool filled by writing into a dot. Commit, Create and Branch fail
 * with POOL_FULL naming the pool and what to do; earlier commits stay intact; deleting a dot
 * and deleting commits (a rollback) still work; the server keeps serving; once space is back,
 * commits work again.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);
const MiB = 2 ** 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Writes random data into `file` until the pool says ENOSPC; returns the bytes written. */
async function fillUntilFull(file: string): Promise<number> {
  const fh = await open(file, 'w');
  let written = 0;
  try {
    for (;;) {
      await fh.write(randomBytes(4 * MiB));
      written += 4 * MiB;
      if (written > 1024 * MiB) throw new Error('the pool never filled');
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    await fh.close().catch(() => undefined);
  }
  return written;
}

function isPoolFull(e: unknown): boolean {
  assert.ok(e instanceof DotmeshError, String(e));
  assert.equal(e.code, 'POOL_FULL', e.message);
  assert.match(e.message, /The pool \/.*\/dotmesh_data is full/);
  assert.match(e.hint ?? '', /dm dot delete.*dm cluster grow --pool-size/);
  return true;
}

describe('a full pool (R6)', { skip }, () => {
  const cleanup = new Cleanup();
  let s: ServerProcess;
  let dir: string;
  before(async () => {
    dir = await makeTempDir('full-', cleanup);
    s = await startServerProcess({ cleanup, dir, poolSize: '400M' });
  });
  after(async () => cleanup.run());

  test('clear POOL_FULL errors, commits intact, deletes work, the server keeps serving', async () => {
    const big = { Namespace: 'admin', Name: 'big' };
    const path = await s.admin.call('Procure', { ...big, Subdot: '' });
    const fsId = await s.admin.call('Lookup', { ...big, Branch: '' });
    const keep = randomBytes(20 * MiB);
    await writeFile(join(path, 'keep.bin'), keep);
    const kept = await s.admin.call('Commit', { ...big, Branch: '', Message: 'keep', Metadata: {} });
    await writeFile(join(path, 'first-fill.bin'), randomBytes(60 * MiB));
    const dropped = await s.admin.call('Commit', { ...big, Branch: '', Message: 'fill', Metadata: {} });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'other' });

    const written = await fillUntilFull(join(path, 'fill.bin'));
    assert.ok(written > 100 * MiB, `filled with ${written} bytes`);

    await assert.rejects(s.admin.call('Commit', { ...big, Branch: '', Message: 'more', Metadata: {} }), isPoolFull);
    await assert.rejects(s.admin.call('Create', { Namespace: 'admin', Name: 'new' }), isPoolFull);
    await assert.rejects(
      s.admin.call('Branch', { ...big, SourceBranch: '', NewBranchName: 'b1', SourceCommitId: kept }),
      isPoolFull,
    );
    assert.equal(await s.admin.call('Ping', null), true);
    assert.deepEqual(Object.keys((await s.admin.call('List', null)).admin ?? {}).sort(), ['big', 'other']);
    const inCommit = await readFile(join(dir, 'mnt', 'fs', fsId, 'commits', kept, kept, '__default__', 'keep.bin'));
    assert.equal(sha(inCommit), sha(keep), 'an earlier commit is intact');

    assert.equal(await s.admin.call('Delete', { Namespace: 'admin', Name: 'other' }), true, 'delete a dot');
    assert.equal(
      await s.admin.call('Rollback', { ...big, Branch: '', SnapshotId: kept }),
      true,
      'roll back: deletes the later commit and the live data',
    );
    const ids = (await s.admin.call('Commits', { ...big, Branch: '' })).map((c) => c.Id);
    assert.equal(ids.at(-1), kept);
    assert.ok(!ids.includes(dropped));

    // The cleaner frees the space asynchronously: commits work again soon after.
    await waitFor(
      async () => {
        try {
          return await s.admin.call('Commit', { ...big, Branch: '', Message: 'after', Metadata: {} });
        } catch {
          return false;
        }
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.equal(sha(await readFile(join(path, 'keep.bin'))), sha(keep));
  });
});
