import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { Cleanup, makeTempDir, type ServerProcess, skipUnless, startServerProcess } from '@dotmesh/testkit';

/**
 * GrowPool on a preallocated 1 GiB pool, grown to 2 GiB while a client keeps committing:
 * every commit succeeds and keeps its data, PoolInfo shows the new size, a shrink is refused,
 * and a restarted server agrees (the config file was updated).
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);
const GiB = 2 ** 30;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('GrowPool: a pool grows online', { skip }, () => {
  const cleanup = new Cleanup();
  let s: ServerProcess;
  let dir: string;
  before(async () => {
    dir = await makeTempDir('grow-', cleanup);
    s = await startServerProcess({ cleanup, dir, poolSize: '1G', extraConfig: { sparse: false } });
  });
  after(async () => cleanup.run());

  test('1G → 2G while a client commits; data intact; a restart agrees', async () => {
    const ns = { Namespace: 'admin', Name: 'busy' };
    const path = await s.admin.call('Procure', { ...ns, Subdot: '' });
    const fsId = await s.admin.call('Lookup', { ...ns, Branch: '' });
    const before = await s.admin.call('PoolInfo', {});
    assert.equal(before.SizeBytes, GiB);
    assert.equal(before.Growable, true);

    const made: Array<{ id: string; file: string; hash: string }> = [];
    let growing = true;
    const committer = (async () => {
      for (let i = 0; growing || i < 3; i++) {
        const data = randomBytes(256 * 1024);
        await writeFile(join(path, `f${i}`), data);
        const id = await s.admin.call('Commit', { ...ns, Branch: '', Message: `c${i}`, Metadata: {} });
        made.push({ id, file: `f${i}`, hash: sha(data) });
      }
    })();
    const grown = await s.admin.call('GrowPool', { SizeBytes: 2 * GiB });
    growing = false;
    await committer;

    assert.equal(grown.SizeBytes, 2 * GiB);
    assert.ok(grown.TotalBytes > 1.5 * GiB, `filesystem resized: ${grown.TotalBytes}`);
    const info = await s.admin.call('PoolInfo', {});
    assert.equal(info.SizeBytes, 2 * GiB);
    assert.ok(info.FreeBytes > GiB, `free after growing: ${info.FreeBytes}`);
    const ids = (await s.admin.call('Commits', { ...ns, Branch: '' })).map((c) => c.Id);
    for (const c of made) {
      assert.ok(ids.includes(c.id), `commit ${c.id} listed`);
      const inCommit = await readFile(join(dir, 'mnt', 'fs', fsId, 'commits', c.id, c.id, '__default__', c.file));
      assert.equal(sha(inCommit), c.hash, `${c.file} intact in its commit`);
    }

    await assert.rejects(s.admin.call('GrowPool', { SizeBytes: GiB }), (e: unknown) => {
      assert.ok(e instanceof DotmeshError && e.code === 'INVALID_ARGUMENT', String(e));
      assert.match(e.message, /Cannot shrink the pool .*dotmesh_data from 2\.00 GiB to 1\.00 GiB/);
      return true;
    });
    assert.equal(
      (await s.admin.call('GrowPool', { SizeBytes: 2 * GiB })).SizeBytes,
      2 * GiB,
      'growing to the same size is a no-op',
    );

    await s.stop();
    const config = JSON.parse(await readFile(s.configFile, 'utf8')) as { poolSizeBytes: number };
    assert.equal(config.poolSizeBytes, 2 * GiB);
    s = await s.restart();
    assert.equal((await s.admin.call('PoolInfo', {})).SizeBytes, 2 * GiB);
    assert.equal((await s.admin.call('Commits', { ...ns, Branch: '' })).length, made.length + 1);
  });
});
