import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Cleanup, makeTempDir, skipUnless, startServerProcess } from '@dotmesh/testkit';

/**
 * A server never opens a pool whose format is newer than it knows (a newer server migrated it,
 * then was downgraded by hand): it exits at start with a message saying so and what to do,
 * and leaves the pool as it was.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);

describe('a pool of a newer format', { skip }, () => {
  const cleanup = new Cleanup();
  after(async () => cleanup.run());

  test('the server refuses to start on it, clearly', async () => {
    const dir = await makeTempDir('newer-', cleanup);
    const s = await startServerProcess({ cleanup, dir, poolSize: '1G' });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'kept' });
    await s.stop();
    const poolJson = join(dir, 'mnt', 'pool.json');
    const pool = JSON.parse(await readFile(poolJson, 'utf8')) as Record<string, unknown>;
    await writeFile(poolJson, JSON.stringify({ ...pool, formatVersion: 99 }));

    await assert.rejects(s.restart(), (e: unknown) => {
      const text = String((e as Error).message);
      assert.match(text, /exited with 1 during start/);
      assert.match(text, /has format version 99, newer than 1 which this dotmesh supports/);
      assert.match(text, /upgrade dotmesh-server/);
      return true;
    });
    assert.equal(JSON.parse(await readFile(poolJson, 'utf8')).formatVersion, 99, 'the pool is left alone');

    await writeFile(poolJson, JSON.stringify(pool));
    const again = await s.restart();
    assert.equal((await again.admin.call('Exists', { Namespace: 'admin', Name: 'kept', Branch: '' })) !== '', true);
  });
});
