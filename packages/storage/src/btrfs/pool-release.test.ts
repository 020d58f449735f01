import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { Cleanup, listLoopDevicesFor, makeTempDir, skipUnless, waitFor } from '@dotmesh/testkit';
import { createExec } from '../exec.ts';
import { destroyPool, loopDevicesOf, openPool, releasePool } from './pool.ts';

/**
 * destroyPool (and releasePool given a wait) returns only once its loop device is really
 * detached. `losetup -d` on a device that another process holds open (udev probing it after the
 * umount, say) only marks it for detaching at its last close; `dm cluster reset --destroy-data`
 * once returned with the device still there. releasePool without a wait returns at once.
 */
const exec = createExec();
const MiB = 2 ** 20;

describe('destroyPool and releasePool: the loop device is gone when they return', {
  skip: skipUnless(['root', 'btrfs', 'losetup']),
}, () => {
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

  test('destroyPool waits while another process holds the device open, and returns once it is detached', async () => {
    const p = await heldPool('release-wait');
    let returned = false;
    const releasing = destroyPool({ poolFile: p.poolFile, mountPoint: p.mountPoint, exec }).then(() => {
      returned = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(returned, false, 'destroyPool waits for the holder');
    assert.deepEqual(await loopDevicesOf(exec, p.poolFile), [p.device], 'losetup -d left the held device attached');
    await p.holder.close();
    await releasing;
    assert.deepEqual(await listLoopDevicesFor(p.poolFile), [], 'no device left, not even on the deleted file');
  });

  test('releasePool without a wait returns at once, the device marked to go at its last close', async () => {
    const p = await heldPool('release-now');
    await releasePool({ poolFile: p.poolFile, mountPoint: p.mountPoint, exec });
    assert.deepEqual(await loopDevicesOf(exec, p.poolFile), [p.device], 'still attached while held');
    await p.holder.close();
    await waitFor(async () => (await loopDevicesOf(exec, p.poolFile)).length === 0, {
      what: 'the device to go after its last close',
    });
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
