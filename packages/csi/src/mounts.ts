import { execFile } from 'node:child_process';
import { readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface MountEntry {
  readonly mountPoint: string;
  /** The path inside its filesystem that is mounted there (a bind mount's source, relative). */
  readonly root: string;
  readonly readOnly: boolean;
}

/** `\040`-style escapes of /proc/self/mountinfo. */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 10) continue;
    out.push({ root: unescapeOctal(f[3]!), mountPoint: unescapeOctal(f[4]!), readOnly: f[5]!.split(',').includes('ro') });
  }
  return out;
}

/** The topmost mount at exactly `path` (symlinks resolved), or undefined. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  const real = await realpath(path).catch(() => resolve(path));
  const entries = parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
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
