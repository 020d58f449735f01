import { spawn } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { EXEC_ENV } from '../exec.ts';

export interface PoolLock {
  readonly lockFile: string;
  /** pid of the `flock` child holding the lock. */
  readonly pid: number;
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

const CONFLICT_EXIT = 75;
const HOLDER_FILE = 'dotmesh-pool.holder';

interface HolderRecord {
  readonly pid: number;
  readonly host: string;
  readonly holder: string;
  readonly since: string;
}

/** `: pid 12 on host h (node-1 at 10.0.0.1) since …`, or '' when the holder left no record. */
async function describeHolder(file: string): Promise<string> {
  try {
    const r = JSON.parse(await readFile(file, 'utf8')) as Partial<HolderRecord>;
    const what = r.holder ? ` (${r.holder})` : '';
    return `: pid ${r.pid} on host ${r.host}${what} since ${r.since}`;
  } catch {
    return '';
  }
}

/**
 * Takes the exclusive lock `<dir>/dotmesh-pool.lock` so that one dotmesh-server uses a pool.
 * Node has no flock(2): a child `flock --exclusive --nonblock <file> sh -c 'echo; exec cat'`
 * holds it while its stdin (a pipe from us) stays open. If our process dies, even by
 * SIGKILL, the pipe closes, `cat` exits and the kernel releases the lock. A second locker
 * fails at once with UNAVAILABLE. The child is spawned directly (not via Exec) because it
 * lives as long as the server; its pid is exposed for diagnostics.
 *
 * The holder describes itself in `<dir>/dotmesh-pool.holder` (JSON: pid, host, `holder` —
 * the caller's words, e.g. its node and address — and since when), written once it holds the
 * lock: a refused locker names it.
 */
export async function acquirePoolLock(dir: string, holder = ''): Promise<PoolLock> {
  await mkdir(dir, { recursive: true });
  const lockFile = join(dir, 'dotmesh-pool.lock');
  const child = spawn(
    'flock',
    [
      '--exclusive',
      '--nonblock',
      '--conflict-exit-code',
      String(CONFLICT_EXIT),
      lockFile,
      'sh',
      '-c',
      'echo locked; exec cat >/dev/null',
    ],
    {
      env: { ...EXEC_ENV },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const locked = await new Promise<boolean>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', () => resolve(true));
    void exited.then(() => resolve(false));
  });
  if (!locked) {
    const code = await exited;
    if (code === CONFLICT_EXIT) {
      const by = await describeHolder(join(dir, HOLDER_FILE));
      throw new DotmeshError('UNAVAILABLE', `another dotmesh-server is already using the pool at ${dir}${by}`, {
        hint: `stop the other server (lock file ${lockFile})`,
      });
    }
    throw new DotmeshError('INTERNAL', `cannot lock ${lockFile}: flock exited with ${code}: ${stderr.trim()}`);
  }
  child.stdout.resume();
  const record: HolderRecord = { pid: process.pid, host: hostname(), holder, since: new Date().toISOString() };
  const holderFile = join(dir, HOLDER_FILE);
  await writeFile(`${holderFile}.new`, `${JSON.stringify(record)}\n`, { mode: 0o644 });
  await rename(`${holderFile}.new`, holderFile);
  let released: Promise<void> | undefined;
  return {
    lockFile,
    pid: child.pid!,
    release() {
      released ??= (async () => {
        child.stdin.end();
        await exited;
      })();
      return released;
    },
  };
}
