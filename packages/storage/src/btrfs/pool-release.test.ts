import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { Cleanup, makeTempDir, skipUnless } from '@dotmesh/testkit';
import { createExec } from '../exec.ts';
import { destroyPool, loopDevicesOf, openPool, releasePool } from './pool.ts';

/**
 * releasePool returns only once its loop device is really detached. `losetup -d` on a device
 * that another process holds open (udev probing it after the umount, say) only marks it for
 * detaching at its last close; a caller that went on at once found the device still there.
 */
const exec = createExec();
const MiB = 2 ** 20;

describe('releasePool: the loop device is gone when it returns', { skip: skipUnless(['root', 'btrfs', 'losetup']) }, () => {
  const cleanup = new Cleanup();
  after(() => cleanup.run());

  async function heldPool(name: string) {
    const dir = await makeTempDir(name, cleanup);
    const poolFile = join(dir, 'dotmesh_data');
    const mountPoint = join(dir, 'mnt');
    cleanup.add(() => destroyPool({ poolFile, mountPoint, exec }), 'destroy the pool');
    await openPool({ poolFile, mountPoint, sizeBytes: 128 * MiB, sparse: true, exec });
    const [device] = await loopDevicesOf(exec, poolFile);
    assert.ok(device, 'the pool has a loop device');
    const holder = await open(device, 'r');
    cleanup.add(() => holder.close().catch(() => {}), `close ${device}`);
    return { poolFile, mountPoint, device, holder };
  }

  test('waits while another process holds the device open, and returns once it is detached', async () => {
    const p = await heldPool('release-wait');
    let returned = false;
    const releasing = releasePool({ poolFile: p.poolFile, mountPoint: p.mountPoint, exec }).then(() => {
      returned = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(returned, false, 'releasePool waits for the holder');
    assert.deepEqual(await loopDevicesOf(exec, p.poolFile), [p.device], 'losetup -d left the held device attached');
    await p.holder.close();
    await releasing;
    assert.deepEqual(await loopDevicesOf(exec, p.poolFile), []);
  });

  test('a device still held after the wait is IN_USE, naming the device', async () => {
    const p = await heldPool('release-held');
    await assert.rejects(
      releasePool({ poolFile: p.poolFile, mountPoint: p.mountPoint, exec, detachTimeoutMs: 300 }),
      (e: unknown) => {
        assert.ok(isDotmeshError(e), String(e));
        assert.equal(e.code, 'IN_USE');
        assert.ok(e.message.includes(p.device), e.message);
        return true;
      },
    );
    await p.holder.close();
  });
});
