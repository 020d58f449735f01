import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';

/** Inode number of every btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID). */
export const SUBVOLUME_ROOT_INO = 256;

/** Turns ENOSPC/EDQUOT into POOL_FULL; rethrows everything else unchanged. */
export function mapFsError(e: unknown, what: string): never {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    throw new DotmeshError('POOL_FULL', `no space left in the pool while ${what}`, {
      cause: e,
      hint: 'delete volumes or commits, or grow the pool',
    });
  }
  throw e;
}

export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` atomically and durably: tmp file in the same directory, fsync, rename,
 * fsync of the directory. Readers see the old or the new content, never a mix.
 */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(`${JSON.stringify(value, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncPath(dirname(path));
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    mapFsError(e, `writing ${path}`);
  }
}

/** Parsed JSON object, or undefined when the file does not exist. */
export async function readJsonObject(path: string): Promise<Record<string, unknown> | undefined> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const v: unknown = JSON.parse(raw);
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${path} does not hold a JSON object`);
  return v as Record<string, unknown>;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

export async function isSubvolumeRoot(path: string): Promise<boolean> {
  try {
    const s = await stat(path);
    return s.isDirectory() && s.ino === SUBVOLUME_ROOT_INO;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Directory entries, or [] when the directory does not exist. */
export async function listDir(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/**
 * Subvolumes under `dir` (not descending into subvolumes, at most `depth` levels), deepest
 * first, so that deleting them in order never hits a parent before its children.
 */
export async function findSubvolumes(dir: string, depth = 6): Promise<string[]> {
  const found: string[] = [];
  const walk = async (p: string, left: number) => {
    for (const name of await listDir(p)) {
      const child = join(p, name);
      const s = await lstat(child).catch(() => undefined);
      if (!s?.isDirectory()) continue;
      if (s.ino === SUBVOLUME_ROOT_INO) found.push(child);
      else if (left > 0) await walk(child, left - 1);
    }
  };
  await walk(dir, depth);
  return found.reverse();
}

export async function mkdirp(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
}
