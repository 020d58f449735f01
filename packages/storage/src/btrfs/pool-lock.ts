import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
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

/**
 * Takes the exclusive lock `<dir>/dotmesh-pool.lock` so that one dotmesh-server uses a pool.
 * Node has no flock(2): a child `flock --exclusive --nonblock <file> sh -c 'echo; exec cat'`
 * holds it while its stdin (a pipe from us) stays open. If our process dies, even by
 * SIGKILL, the pipe closes, `cat` exits and the kernel releases the lock. A second locker
 * fails at once with UNAVAILABLE. The child is spawned directly (not via Exec) because it
 * lives as long as the server; its pid is exposed for diagnostics.
 */
export async function acquirePoolLock(dir: string): Promise<PoolLock> {
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
      throw new DotmeshError('UNAVAILABLE', `another dotmesh-server is already using the pool at ${dir}`, {
        hint: `stop the other server (lock file ${lockFile})`,
      });
    }
    throw new DotmeshError('INTERNAL', `cannot lock ${lockFile}: flock exited with ${code}: ${stderr.trim()}`);
  }
  child.stdout.resume();
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
