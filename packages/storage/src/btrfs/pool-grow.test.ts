import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { open, readFile, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, makeTempDir, skipUnless } from '@dotmesh/testkit';
import { createExec } from '../exec.ts';
import { destroyPool, growPool, loopDevicesOf, openPool } from './pool.ts';

/**
 * growPool on a real preallocated btrfs loop pool, mounted and in use: the filesystem grows
 * with a file held open for writing the whole time, nothing unmounted, the data the same; and
 * a grow stopped halfway (the file grown, the loop device and btrfs not; then the loop device
 * too) is finished by running growPool again, which is a no-op once done.
 */
const exec = createExec();
const MiB = 2 ** 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fsBytes = async (dir: string) => {
  const s = await statfs(dir);
  return s.blocks * s.bsize;
};
const loopBytes = async (poolFile: string) => {
  const [loop] = await loopDevicesOf(exec, poolFile);
  return Number((await exec.run('blockdev', ['--getsize64', loop!])).stdout.trim());
};

describe('growPool: a mounted pool grows online', { skip: skipUnless(['root', 'btrfs', 'losetup']) }, () => {
  const cleanup = new Cleanup();
  let poolFile = '';
  let mountPoint = '';
  before(async () => {
    const dir = await makeTempDir('pool-grow', cleanup);
    poolFile = join(dir, 'dotmesh_data');
    mountPoint = join(dir, 'mnt');
    cleanup.add(() => destroyPool({ poolFile, mountPoint, exec }), 'destroy the pool');
    await openPool({ poolFile, mountPoint, sizeBytes: 256 * MiB, sparse: false, exec });
  });
  after(() => cleanup.run());

  test('grows while a file is open for writing; the data stays; a second run is a no-op', async () => {
    const data = randomBytes(8 * MiB);
    await writeFile(join(mountPoint, 'before'), data);
    const before = await fsBytes(mountPoint);
    const writer = await open(join(mountPoint, 'open'), 'w');
    try {
      await writer.write(randomBytes(MiB));
      await growPool({ poolFile, mountPoint, sizeBytes: 384 * MiB, sparse: false, exec });
      await writer.write(randomBytes(MiB));
    } finally {
      await writer.close();
    }
    assert.equal((await stat(poolFile)).size, 384 * MiB);
    assert.equal(await loopBytes(poolFile), 384 * MiB, 'the loop device sees the new size');
    const grown = await fsBytes(mountPoint);
    assert.ok(grown - before >= 120 * MiB, `btrfs grew by ~128 MiB: ${before} → ${grown}`);
    assert.equal((await stat(join(mountPoint, 'open'))).size, 2 * MiB, 'the writer kept writing across the grow');
    assert.equal(sha(await readFile(join(mountPoint, 'before'))), sha(data));
    assert.ok((await stat(poolFile)).blocks * 512 >= 384 * MiB, 'the new part is allocated (fallocate)');

    await growPool({ poolFile, mountPoint, sizeBytes: 384 * MiB, sparse: false, exec });
    assert.equal(await fsBytes(mountPoint), grown, 'running it again changes nothing');
    await growPool({ poolFile, mountPoint, sizeBytes: 300 * MiB, sparse: false, exec });
    assert.equal((await stat(poolFile)).size, 384 * MiB, 'never shrinks');
  });

  test('a grow stopped after the file grew is finished by running it again', async () => {
    const before = await fsBytes(mountPoint);
    // Stopped after its first step: the file is bigger, the loop device and btrfs are not.
    await exec.run('fallocate', ['-l', String(512 * MiB), poolFile]);
    assert.equal(await loopBytes(poolFile), 384 * MiB);
    assert.equal(await fsBytes(mountPoint), before, 'btrfs has not grown yet');
    await growPool({ poolFile, mountPoint, sizeBytes: 512 * MiB, sparse: false, exec });
    assert.equal(await loopBytes(poolFile), 512 * MiB);
    const grown = await fsBytes(mountPoint);
    assert.ok(grown - before >= 120 * MiB, `finished: ${before} → ${grown}`);

    // Stopped after its second step: the loop device is bigger, btrfs is not.
    await exec.run('fallocate', ['-l', String(640 * MiB), poolFile]);
    for (const loop of await loopDevicesOf(exec, poolFile)) await exec.run('losetup', ['-c', loop]);
    assert.equal(await fsBytes(mountPoint), grown, 'btrfs has not grown yet');
    await growPool({ poolFile, mountPoint, sizeBytes: 640 * MiB, sparse: false, exec });
    assert.ok((await fsBytes(mountPoint)) - grown >= 120 * MiB, 'finished');
  });
});
