import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { poolSizeOnVolume } from '@dotmesh/rpc/server-defaults';
import { createExec, destroyPool, loopDevicesOf, openPool } from '@dotmesh/storage';
import { Cleanup, makeTempDir, skipUnless } from '@dotmesh/testkit';
import { SILENT_LOGGER } from '../src/log.ts';
import { LoopPoolControl } from '../src/pool/pool-grow.ts';
import { filesystemBytes, VolumeGrowth } from '../src/pool/volume-growth.ts';

/**
 * A pool on a volume of its own follows the volume (the server's side of pvcPerNode pool
 * growth), on real parts: the volume is a filesystem on a loop device (as the test cloud
 * volume's), grown online the way a CSI driver's NodeExpandVolume does (file bigger,
 * `losetup -c`, then the filesystem); the pool is a preallocated btrfs loop file on it. The
 * volume is btrfs: growing ext4 online (resize2fs) needs CAP_SYS_RESOURCE, which this
 * machine's root lacks. The pool grows on the next look while a file on it is open for
 * writing, nothing unmounted, the data the same; and a grow stopped halfway (the pool file
 * grown, btrfs not) is finished by a new start.
 */
const exec = createExec();
const MiB = 2 ** 20;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('VolumeGrowth: a pool on a volume of its own grows with it, online', {
  skip: skipUnless(['root', 'btrfs', 'losetup']),
}, () => {
  const cleanup = new Cleanup();
  let image = '';
  let volumeLoop = '';
  let volume = '';
  let poolFile = '';
  let mountPoint = '';
  const persisted: number[] = [];
  const control = () =>
    new LoopPoolControl({
      device: { poolFile, mountPoint, sparse: false, ownsFilesystem: true },
      exec,
      logger: SILENT_LOGGER,
      persistSize: async (bytes) => void persisted.push(bytes),
    });
  /** Grows the volume online, as a CSI driver's ControllerExpandVolume and NodeExpandVolume do. */
  const growVolume = async (bytes: number) => {
    await exec.run('truncate', ['-s', String(bytes), image]);
    await exec.run('losetup', ['-c', volumeLoop]);
    await exec.run('btrfs', ['filesystem', 'resize', 'max', volume]);
  };

  before(async () => {
    const dir = await makeTempDir('volume-growth', cleanup);
    image = join(dir, 'volume.img');
    volume = join(dir, 'volume');
    mountPoint = join(dir, 'pool');
    poolFile = join(volume, 'dotmesh_data');
    await exec.run('truncate', ['-s', String(640 * MiB), image]);
    await exec.run('mkfs.btrfs', ['-q', image]);
    volumeLoop = (await exec.run('losetup', ['-f', '--show', image])).stdout.trim();
    cleanup.add(() => exec.run('losetup', ['-d', volumeLoop]), 'detach the volume');
    await mkdir(volume);
    await exec.run('mount', [volumeLoop, volume]);
    cleanup.add(() => exec.run('umount', [volume]), 'unmount the volume');
    cleanup.add(() => destroyPool({ poolFile, mountPoint, exec }), 'destroy the pool');
    await openPool({ poolFile, mountPoint, sizeBytes: poolSizeOnVolume(await filesystemBytes(volume)), sparse: false, exec });
  });
  after(() => cleanup.run());

  test('the volume grows; on its next look the server grows the pool while a file is open for writing', async () => {
    const data = randomBytes(4 * MiB);
    await writeFile(join(mountPoint, 'kept'), data);
    const poolBefore = (await stat(poolFile)).size;
    const btrfsBefore = await filesystemBytes(mountPoint);
    const growth = new VolumeGrowth({ volumeDir: volume, pool: control(), intervalMs: 60_000, logger: SILENT_LOGGER });
    await growth.start();
    growth.stop();
    assert.equal((await stat(poolFile)).size, poolBefore, 'a volume of the same size: the same pool');

    const writer = await open(join(mountPoint, 'open'), 'w');
    try {
      await writer.write(randomBytes(MiB));
      await growVolume(1024 * MiB);
      const target = poolSizeOnVolume(await filesystemBytes(volume));
      assert.ok(target > poolBefore + 300 * MiB, `the volume allows a bigger pool: ${poolBefore} → ${target}`);
      await growth.check();
      await writer.write(randomBytes(MiB));
      assert.equal((await stat(poolFile)).size, target, 'the pool file has the size the volume allows');
      assert.deepEqual(persisted.at(-1), target, 'the new size is persisted');
    } finally {
      await writer.close();
    }
    const btrfsAfter = await filesystemBytes(mountPoint);
    assert.ok(btrfsAfter - btrfsBefore >= 300 * MiB, `btrfs grew online: ${btrfsBefore} → ${btrfsAfter}`);
    assert.equal((await stat(join(mountPoint, 'open'))).size, 2 * MiB, 'the writer kept writing across the grow');
    assert.equal(sha(await readFile(join(mountPoint, 'kept'))), sha(data));
  });

  test('a grow stopped after the pool file grew is finished when the server starts again', async () => {
    await growVolume(1280 * MiB);
    const target = poolSizeOnVolume(await filesystemBytes(volume));
    const btrfsBefore = await filesystemBytes(mountPoint);
    // The server was killed after the file grew: the loop device and btrfs are the old size.
    await exec.run('fallocate', ['-l', String(target), poolFile]);
    assert.equal(await filesystemBytes(mountPoint), btrfsBefore);
    const restarted = new VolumeGrowth({ volumeDir: volume, pool: control(), intervalMs: 60_000, logger: SILENT_LOGGER });
    await restarted.start();
    restarted.stop();
    const [loop] = await loopDevicesOf(exec, poolFile);
    assert.equal(Number((await exec.run('blockdev', ['--getsize64', loop!])).stdout.trim()), target, 'the loop device re-read');
    assert.ok((await filesystemBytes(mountPoint)) - btrfsBefore >= 200 * MiB, 'btrfs grown to the file');
    assert.equal(persisted.at(-1), target);
  });
});
