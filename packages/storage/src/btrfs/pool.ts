import { mkdir, open, realpath, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError } from '@dotmesh/core';
import type { Exec, ExecLogger } from '../exec.ts';
import { exists } from './fsutil.ts';
import { readMounts } from './mountinfo.ts';
import { ensurePoolFile, type Migration } from './pool-format.ts';

const BTRFS_SUPER_MAGIC = 0x9123683e;

export interface OpenPoolOptions {
  /** The loop file holding the pool (ignored with existingMount). */
  readonly poolFile: string;
  readonly mountPoint: string;
  readonly sizeBytes: number;
  /** true: a sparse file (truncate); false: preallocated with fallocate, so the pool cannot overcommit the host disk. */
  readonly sparse: boolean;
  /** An already-mounted btrfs directory to use as is (never reformatted, remounted, nor quota-enabled). */
  readonly existingMount?: string;
  readonly exec: Exec;
  readonly logger?: ExecLogger;
  /** For tests: migrations and target format (default: the real table and version). */
  readonly migrations?: Readonly<Record<number, Migration>>;
  readonly formatVersion?: number;
}

export interface OpenedPool {
  readonly root: string;
  readonly poolId: string;
  readonly formatVersion: number;
  /** undefined with existingMount. */
  readonly loopDevice: string | undefined;
}

/**
 * Brings a pool up at server start; idempotent (a second call changes nothing):
 * creates the pool file if missing (mkfs'd under a temporary name, then renamed, so a crash
 * never leaves an unformatted pool file), attaches exactly one loop device (reusing an
 * attached one), mounts it with noatime at mountPoint unless already mounted there, and
 * ensures pool.json (refusing a newer format, migrating an older one). Callers should hold
 * acquirePoolLock(dirname(poolFile)) first. Never unmounts anything.
 */
export async function openPool(o: OpenPoolOptions): Promise<OpenedPool> {
  const ensureOpts = { migrations: o.migrations, target: o.formatVersion };
  if (o.existingMount) {
    const root = await realpath(o.existingMount);
    const s = await statfs(root);
    if (s.type !== BTRFS_SUPER_MAGIC) throw new DotmeshError('UNSUPPORTED', `${root} is not on a btrfs filesystem`);
    const mount = (await readMounts()).filter((m) => root === m.mountPoint || root.startsWith(`${m.mountPoint}/`)).at(-1);
    if (mount && !/\bnoatime\b/.test(mount.options)) {
      o.logger?.warn({ root, options: mount.options }, 'pool mount lacks noatime: reads will make volumes look dirty');
    }
    const pool = await ensurePoolFile(root, ensureOpts);
    return { root, poolId: pool.poolId, formatVersion: pool.formatVersion, loopDevice: undefined };
  }
  if (!(await exists(o.poolFile))) await createPoolFile(o);
  const loopDevice = await attachLoop(o.exec, o.poolFile);
  await mkdir(o.mountPoint, { recursive: true });
  const mountPoint = await realpath(o.mountPoint);
  const mounted = (await readMounts()).filter((m) => m.mountPoint === mountPoint).at(-1);
  if (!mounted) {
    await o.exec.run('mount', ['-t', 'btrfs', '-o', 'noatime', loopDevice, mountPoint]);
  } else if (mounted.source !== loopDevice) {
    throw new DotmeshError(
      'CONFLICT',
      `${mountPoint} already has ${mounted.source} mounted, not the pool ${o.poolFile} (${loopDevice})`,
    );
  }
  const pool = await ensurePoolFile(mountPoint, ensureOpts);
  return { root: mountPoint, poolId: pool.poolId, formatVersion: pool.formatVersion, loopDevice };
}

async function createPoolFile(o: OpenPoolOptions): Promise<void> {
  await mkdir(dirname(o.poolFile), { recursive: true });
  const tmp = `${o.poolFile}.creating`;
  await rm(tmp, { force: true });
  if (o.sparse) {
    const fh = await open(tmp, 'wx', 0o600);
    await fh.truncate(o.sizeBytes);
    await fh.close();
  } else {
    await o.exec.run('fallocate', ['-l', String(o.sizeBytes), tmp]);
  }
  await o.exec.run('mkfs.btrfs', ['-q', tmp]);
  await rename(tmp, o.poolFile);
  o.logger?.debug({ poolFile: o.poolFile, sizeBytes: o.sizeBytes, sparse: o.sparse }, 'created pool file');
}

/**
 * Grows a pool file while its pool is mounted and in use (no unmount, nothing paused): extends
 * the file to `sizeBytes` when it is smaller (truncate for a sparse pool, fallocate for a
 * preallocated one: its new part is allocated too), has every loop device of it re-read its size
 * (`losetup -c`) and grows the btrfs mounted at `mountPoint` to its device (`btrfs filesystem
 * resize max`). Never shrinks (a larger file is left as it is). Idempotent: each step is a
 * no-op once done, so running it again finishes a grow stopped at any point (after the file
 * grew, the loop device or the filesystem still small). Callers check the sizes and the space.
 */
export async function growPool(o: {
  readonly poolFile: string;
  readonly mountPoint: string;
  readonly sizeBytes: number;
  readonly sparse: boolean;
  readonly exec: Exec;
}): Promise<void> {
  const current = (await stat(o.poolFile)).size;
  if (o.sizeBytes > current) {
    if (o.sparse) await o.exec.run('truncate', ['-s', String(o.sizeBytes), o.poolFile]);
    else await o.exec.run('fallocate', ['-l', String(o.sizeBytes), o.poolFile]);
  }
  for (const loop of await loopDevicesOf(o.exec, o.poolFile)) await o.exec.run('losetup', ['-c', loop]);
  await o.exec.run('btrfs', ['filesystem', 'resize', 'max', o.mountPoint]);
}

/** Loop devices attached to `file` (`losetup -j`). */
export async function loopDevicesOf(exec: Exec, file: string): Promise<string[]> {
  const { stdout } = await exec.run('losetup', ['-j', await realpath(file)]);
  return stdout
    .split('\n')
    .map((l) => l.split(':')[0]?.trim() ?? '')
    .filter((d) => d.startsWith('/dev/'));
}

async function attachLoop(exec: Exec, file: string): Promise<string> {
  const attached = await loopDevicesOf(exec, file);
  if (attached[0]) return attached[0];
  const { stdout } = await exec.run('losetup', ['-f', '--show', await realpath(file)]);
  return stdout.trim();
}

/**
 * Removes a pool for good: unmounts every mount of its loop device(s), detaches them and
 * deletes the file. Idempotent. Only for `dm cluster reset`-like commands and tests. Returns
 * once the loop devices are really gone (IN_USE, the file kept, if one is still held open
 * after `detachTimeoutMs`, default 10 s).
 */
export async function destroyPool(o: {
  poolFile: string;
  mountPoint?: string;
  exec: Exec;
  detachTimeoutMs?: number;
}): Promise<void> {
  await releasePool({ ...o, detachTimeoutMs: o.detachTimeoutMs ?? 10_000 });
  await rm(o.poolFile, { force: true });
  await rm(`${o.poolFile}.creating`, { force: true });
}

/**
 * Lets go of a pool, keeping it: unmounts every mount of its loop device(s) (the pool's and the
 * dots' bind mounts of it, innermost first) and detaches them, so that the file's volume can
 * be unmounted and moved. Idempotent. Fails (the umount's error) while something uses a mount.
 * A device something else still holds open (another mount namespace's mount of the pool, udev
 * probing it) is only marked to be detached at its last close: with `detachTimeoutMs`, waits
 * that long for it to go (then IN_USE); without, returns at once. A server releasing its pool
 * as its pod stops must not wait: that pod's own mount namespace may be the holder.
 */
export async function releasePool(o: {
  poolFile: string;
  mountPoint?: string;
  exec: Exec;
  /** Wait this long for the loop devices to be gone (IN_USE after); default: no wait. */
  detachTimeoutMs?: number;
}): Promise<void> {
  const devices = (await exists(o.poolFile)) ? await loopDevicesOf(o.exec, o.poolFile) : [];
  const mounts = (await readMounts())
    .filter(
      (m) => devices.includes(m.source) || (o.mountPoint !== undefined && m.mountPoint === o.mountPoint && m.fsType === 'btrfs'),
    )
    .reverse();
  for (const m of mounts) await o.exec.run('umount', [m.mountPoint]);
  for (const d of devices) await o.exec.run('losetup', ['-d', d]);
  if (o.detachTimeoutMs !== undefined) await untilDetached(o.exec, o.poolFile, devices, o.detachTimeoutMs);
}

/**
 * Waits until none of `devices` is attached to `file` any more. `losetup -d` on a device that
 * something still holds open (udev probing it after the umount, say) only marks it to be
 * detached at its last close, and returns at once.
 */
async function untilDetached(exec: Exec, file: string, devices: readonly string[], timeoutMs: number): Promise<void> {
  if (devices.length === 0) return;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = (await loopDevicesOf(exec, file)).filter((d) => devices.includes(d));
    if (left.length === 0) return;
    if (Date.now() > deadline)
      throw new DotmeshError(
        'IN_USE',
        `loop device ${left.join(', ')} of ${file} is still attached ${timeoutMs / 1000} s after losetup -d`,
        {
          hint: `find what holds it open (fuser -vm ${left[0]}), stop that, then run the command again`,
        },
      );
    await sleep(50);
  }
}
