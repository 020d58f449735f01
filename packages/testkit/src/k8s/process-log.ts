import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cleanup } from '../cleanup.ts';
import { type SpawnTrackedOptions, spawnTracked, type TrackedProcess, waitFor } from '../process.ts';

/**
 * Test-cluster components write their output to `<logDir>/<name>.log` (kept with the cluster's
 * directory for diagnosis) rather than to a pipe, so a long run never blocks on a full pipe.
 */
export interface ComponentProcess extends TrackedProcess {
  readonly name: string;
  readonly logFile: string;
}

/** Starts `bin args` (through `netnsPath` when given) as a tracked component. */
export type ComponentLauncher = (name: string, bin: string, args: readonly string[], netnsPath?: string) => ComponentProcess;

export function componentLauncher(o: { logDir: string; cleanup?: Cleanup; env?: NodeJS.ProcessEnv }): ComponentLauncher {
  return (name, bin, args, netnsPath) => {
    const logFile = join(o.logDir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    try {
      const [cmd, argv] = netnsPath === undefined ? [bin, args] : ['nsenter', [`--net=${netnsPath}`, '--', bin, ...args]];
      const opts: SpawnTrackedOptions = { stdio: ['ignore', fd, fd], graceMs: 10_000, env: o.env ?? process.env };
      if (o.cleanup) opts.cleanup = o.cleanup;
      const p = spawnTracked(cmd, argv, opts);
      return Object.assign(p, { name, logFile });
    } finally {
      closeSync(fd);
    }
  };
}

/** The last `bytes` of a component's log. */
export function logTail(p: ComponentProcess, bytes = 4000): string {
  try {
    return readFileSync(p.logFile, 'utf8').slice(-bytes);
  } catch {
    return '(no log)';
  }
}

/**
 * Waits until `check` passes; fails at once, with the log's tail, when the component exits.
 */
export async function waitUntil(
  p: ComponentProcess,
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const stop = new AbortController();
  void p.exited.then((e) => stop.abort(new Error(`${p.name} exited (${e.code ?? e.signal}) while waiting for ${what}`)));
  try {
    await waitFor(check, { timeoutMs, intervalMs: 200, what, signal: stop.signal });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- ${p.logFile} (tail) ---\n${logTail(p)}`, { cause: e });
  }
}
