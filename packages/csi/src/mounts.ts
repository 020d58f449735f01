import { execFile } from 'node:child_process';
import { readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { type MountEntry, parseMountInfo } from '@dotmesh/core';

const run = promisify(execFile);

/** The topmost mount at exactly `path` (symlinks resolved), or undefined. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  const real = await realpath(path).catch(() => resolve(path));
  const entries = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  return entries.findLast((e) => e.mountPoint === real);
}

/** Bind mounts `source` at `target` (both existing directories); read-only by a remount. */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await run('mount', ['--bind', '--', source, target]);
  if (!readOnly) return;
  try {
    await run('mount', ['-o', 'remount,bind,ro', '--', target]);
  } catch (e) {
    await run('umount', ['--', target]).catch(() => undefined);
    throw e;
  }
}

/** Unmounts every mount stacked at `target` (a retried publish may have left two). */
export async function unmountAll(target: string): Promise<void> {
  while (await mountAt(target)) await run('umount', ['--', target]);
}
