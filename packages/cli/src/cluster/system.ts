import { execFile } from 'node:child_process';
import { constants, readFileSync } from 'node:fs';
import { access, readFile, statfs } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';

/**
 * Host facts and small process helpers for `dm cluster init/reset`. Everything here reads the
 * real machine; the decisions made from these facts live in preflight.ts and are pure.
 */
const execFileP = promisify(execFile);

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Finds a command on PATH (plus the sbin dirs, which a sudo PATH may lack). */
export async function which(command: string, pathEnv: string | undefined): Promise<string | null> {
  const dirs = [...(pathEnv ?? '').split(delimiter).filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    const candidate = join(dir, command);
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}

export async function btrfsInKernel(): Promise<boolean> {
  const listed = async () => /\bbtrfs$/m.test(await readFile('/proc/filesystems', 'utf8').catch(() => ''));
  if (await listed()) return true;
  // Not loaded yet: a module kernel loads it on demand; try once.
  await execFileP('modprobe', ['btrfs']).catch(() => undefined);
  return listed();
}

/** Free bytes (for unprivileged users, as df shows) on the filesystem holding `path` or its nearest existing parent. */
export async function freeBytesAt(path: string): Promise<number> {
  let p = path;
  while (!(await exists(p)) && dirname(p) !== p) p = dirname(p);
  const s = await statfs(p);
  return s.bavail * s.bsize;
}

/** Is a mounted btrfs filesystem at exactly `path`? */
export async function isBtrfsMount(path: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => '');
  return mounts.split('\n').some((line) => {
    const [, mountPoint, fsType] = line.split(' ');
    return mountPoint === path.replace(/\/+$/, '') && fsType === 'btrfs';
  });
}

/** True when nothing listens on host:port (we can bind it). */
export function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Does the process exist (a zombie waiting to be reaped counts as gone)? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/** The pid in a pid file if that process is alive, else null. */
export async function runningPid(pidFile: string): Promise<number | null> {
  const text = await readFile(pidFile, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 1 && processAlive(pid) ? pid : null;
}

/** The command line of a process (NUL-separated in /proc), "" when unknown. */
export async function commandLineOf(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ').trim();
}

export async function pid1IsSystemd(): Promise<boolean> {
  return (await readFile('/proc/1/comm', 'utf8').catch(() => '')).trim() === 'systemd';
}

export async function run(command: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
  return execFileP(command, [...args], { maxBuffer: 16 * 1024 * 1024 });
}

/** The last `lines` lines of a text file ("" if unreadable). */
export async function tail(path: string, lines = 20): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .slice(-lines - 1)
    .join('\n')
    .trimEnd();
}
