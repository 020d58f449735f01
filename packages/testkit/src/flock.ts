import { spawn } from 'node:child_process';

/**
 * Takes an exclusive flock(1) on `path` (`shared`: a shared one, which other shared holders
 * may hold too and an exclusive one waits for), held by a child `cat` that lives until its
 * stdin closes: `release()` closes it, and so does the kernel if this process dies.
 */
export async function acquireFlock(
  path: string,
  timeoutMs: number,
  o: { readonly shared?: boolean } = {},
): Promise<() => Promise<void>> {
  const child = spawn(
    'flock',
    [o.shared ? '-s' : '-x', '-w', String(Math.ceil(timeoutMs / 1000)), path, 'sh', '-c', 'echo locked; exec cat'],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  // A holder that died already released the lock: ending its stdin then fails (EPIPE), harmlessly.
  child.stdin.on('error', () => {});
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const locked = new Promise<boolean>((resolve) => {
    child.stdout.on('data', (c: Buffer) => c.toString().includes('locked') && resolve(true));
    void exited.then(() => resolve(false));
  });
  if (!(await locked)) throw new Error(`could not lock ${path}: ${stderr.trim() || 'flock exited'}`);
  return async () => {
    child.stdin.end();
    await exited;
  };
}
