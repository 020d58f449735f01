import { execFile } from 'node:child_process';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cleanup, detachLoopDevicesUnder, makeTempDir, unmountUnder } from '@dotmesh/testkit';
import { MiB } from './harness.ts';

/**
 * The raw btrfs operations the references are made of, each one process per call as a shell
 * loop would run them (the server, too, runs one `btrfs` process per snapshot), and the data
 * writes shared by a dot and its raw twin so both hold the same bytes.
 */

/** Runs a command; rejects with its stderr when it exits non-zero. */
export function sh(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', maxBuffer: 256 * MiB }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

export const createSubvolume = (path: string) => sh('btrfs', ['subvolume', 'create', path]);
export const snapshot = (src: string, dst: string, readonly: boolean) =>
  sh('btrfs', ['subvolume', 'snapshot', ...(readonly ? ['-r'] : []), src, dst]);
export const deleteSubvolumes = (paths: readonly string[]) =>
  paths.length === 0 ? Promise.resolve('') : sh('btrfs', ['subvolume', 'delete', ...paths]);
/** `sync -f`: commits the filesystem holding `path` (what "after the write and sync" means). */
export const syncFs = (path: string) => sh('sync', ['-f', path]);

/**
 * The data-path part of the rollback reference: a writable snapshot of `commit` replaces `live`
 * (snapshot, then two renames, as the driver does); the old live subvolume is returned so the
 * caller deletes it outside the timed part.
 */
export async function swapLive(commit: string, live: string, scratch: string): Promise<string> {
  const next = `${scratch}.new`;
  const old = `${scratch}.old`;
  await snapshot(commit, next, false);
  await rename(live, old);
  await rename(next, live);
  return old;
}

/**
 * Writes `bytes` of real data (no fallocate, no holes) into `file` in 1 MiB blocks of a random
 * buffer whose first 8 bytes carry the block number, so no two blocks are equal. Not synced.
 */
export async function fillFile(file: string, bytes: number, seed: Buffer): Promise<void> {
  const fh = await open(file, 'w');
  try {
    const block = Buffer.from(seed.subarray(0, MiB));
    for (let off = 0; off < bytes; off += MiB) {
      block.writeBigUInt64LE(BigInt(off / MiB), 0);
      const len = Math.min(MiB, bytes - off);
      await fh.write(block, 0, len, off);
    }
  } finally {
    await fh.close();
  }
}

/** Writes `data` into `file` at `offset`, in place (the file must exist). Not synced. */
export async function writeAt(file: string, data: Buffer, offset: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(data, 0, data.length, offset);
  } finally {
    await fh.close();
  }
}

/** Overwrites `file` with `bytes` of `fill` (the "4 KiB write" and the "100 MiB unflushed"). */
export async function overwrite(file: string, bytes: number, fill: number): Promise<void> {
  await writeFile(file, Buffer.alloc(bytes, fill));
}

export interface RawPool {
  readonly dir: string;
  readonly mnt: string;
}

/**
 * A loop-file btrfs pool of its own (sparse file of `size`, e.g. "2G"), mounted noatime as the
 * server mounts its pool. Unmounted, detached and removed by `cleanup`, even after a failure.
 */
export async function makeRawPool(cleanup: Cleanup, size: string): Promise<RawPool> {
  const dir = await makeTempDir('bench-raw', cleanup);
  cleanup.add(async () => {
    await unmountUnder(`${dir}/`);
    await detachLoopDevicesUnder(`${dir}/`);
  }, `raw pool ${dir}`);
  const img = join(dir, 'pool.img');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  await sh('truncate', ['-s', size, img]);
  await sh('mkfs.btrfs', ['-q', img]);
  const loop = (await sh('losetup', ['-f', '--show', img])).trim();
  try {
    await sh('mount', ['-o', 'noatime', loop, mnt]);
  } catch (e) {
    await sh('losetup', ['-d', loop]);
    throw e;
  }
  return { dir, mnt };
}

/** Removes a directory tree that holds no subvolumes (scratch files). */
export const removeTree = (path: string) => rm(path, { recursive: true, force: true });
