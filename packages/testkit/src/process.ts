import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cleanup } from './cleanup.ts';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; rejects with its stderr when it exits non-zero. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 120_000, env: opts.env, cwd: opts.cwd, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const detail = stderr.trim() || err.message;
          reject(new Error(`${cmd} ${args.join(' ')} failed: ${detail}`, { cause: err }));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

export interface SpawnTrackedOptions extends SpawnOptions {
  /** Registers `stop()` on this stack. */
  cleanup?: Cleanup;
  /** Grace period between SIGTERM and SIGKILL in `stop()`; default 5000 ms. */
  graceMs?: number;
  /** Where to record the PID; default `$DOTMESH_TEST_ROOT/.pids` when that is set, else nowhere. */
  pidFile?: string;
}

export interface TrackedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Settles when the process exits (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last 64 KiB of stdout and stderr interleaved (when they are pipes), for diagnostics. */
  output(): string;
  /** Kills the process and all its descendants; idempotent. */
  stop(): Promise<void>;
}

const OUTPUT_LIMIT = 64 * 1024;

/**
 * Spawns a process in its own process group and records its PID (with its start time, so a
 * reused PID is never mistaken for it) in the run's PID file, from which scripts/test-all kills
 * whatever a crashed test left running. stdout/stderr default to pipes kept in a ring buffer.
 */
export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnTrackedOptions = {}): TrackedProcess {
  const { cleanup, graceMs = 5000, pidFile = defaultPidFile(), ...spawnOpts } = opts;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts, detached: true });
  // Listen before anything can throw: an unheard 'error' event (ENOENT) would crash the runner.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  if (child.pid === undefined) {
    throw new Error(`could not start ${cmd}: no pid (is it installed and executable?)`);
  }
  const pid = child.pid;
  let buffered = '';
  const keep = (chunk: Buffer) => {
    buffered = (buffered + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  if (pidFile !== undefined) {
    appendFileSync(pidFile, `${pid}\t${processStartTime(pid) ?? ''}\t${[cmd, ...args].join(' ')}\n`);
  }
  let stopping: Promise<void> | undefined;
  const tracked: TrackedProcess = {
    pid,
    child,
    exited,
    output: () => buffered,
    stop: () => {
      stopping ??= killTree(pid, { graceMs }).then(async () => {
        await exited;
      });
      return stopping;
    },
  };
  cleanup?.add(() => tracked.stop(), `stop ${cmd} (pid ${pid})`);
  return tracked;
}

function defaultPidFile(): string | undefined {
  const root = process.env.DOTMESH_TEST_ROOT;
  return root ? join(root, '.pids') : undefined;
}

interface ProcStat {
  readonly pid: number;
  readonly state: string;
  readonly ppid: number;
  readonly startTime: string;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number.parseInt(text, 10);
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); field 4 is ppid; field 22 is starttime.
  const state = rest[0];
  const ppid = Number(rest[1]);
  const startTime = rest[19];
  if (state === undefined || startTime === undefined || Number.isNaN(pid)) return undefined;
  return { pid, state, ppid, startTime };
}

function readStat(pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The kernel's start time of `pid` (clock ticks since boot), or undefined if it is gone. */
export function processStartTime(pid: number): string | undefined {
  return readStat(pid)?.startTime;
}

/** True while `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const st = readStat(pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X';
}

/** `pid` and all its descendants (children before grandchildren). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (st === undefined) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(st.pid);
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone (ESRCH) or not ours (EPERM): nothing more to do for this one.
  }
}

/**
 * Sends `signal` (default SIGTERM) to `pid` and every descendant, waits up to `graceMs` for
 * them to exit, then SIGKILLs whatever is left. Resolves once none is alive. Idempotent.
 */
export async function killTree(
  pid: number,
  opts: { signal?: NodeJS.Signals; graceMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const { signal: sig = 'SIGTERM', graceMs = 5000, intervalMs = 50 } = opts;
  const seen = new Set<number>();
  const alive = () => [...seen].filter(isAlive);
  for (const p of processTree(pid)) seen.add(p);
  for (const p of seen) signal(p, sig);
  const deadline = Date.now() + graceMs;
  while (alive().length > 0 && Date.now() < deadline) {
    await sleep(intervalMs);
    // Children forked after the first pass are part of the tree too.
    for (const root of alive()) for (const p of processTree(root)) seen.add(p);
  }
  for (let round = 0; round < 50 && alive().length > 0; round++) {
    for (const root of alive()) for (const p of processTree(root)) seen.add(p);
    for (const p of alive()) signal(p, 'SIGKILL');
    await sleep(intervalMs);
  }
  const left = alive();
  if (left.length > 0) throw new Error(`processes survived SIGKILL: ${left.join(', ')}`);
}

export interface WaitForOptions {
  /** Default 10000 ms. */
  timeoutMs?: number;
  /** Pause between attempts; default 100 ms. */
  intervalMs?: number;
  /** Names what is awaited in the timeout error. */
  what?: string;
  signal?: AbortSignal;
}

/**
 * Calls `fn` until it returns a truthy value and resolves with that value. A throw counts as
 * "not yet"; on timeout the error carries the last throw as its cause.
 */
export type Truthy<T> = Exclude<T, undefined | null | false | 0 | ''>;

export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitForOptions = {}): Promise<Truthy<T>> {
  const { timeoutMs = 10_000, intervalMs = 100, what = 'condition', signal: abort } = opts;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    abort?.throwIfAborted();
    attempts++;
    try {
      const v = await fn();
      if (v) return v as Truthy<T>;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const tail = lastError === undefined ? '' : `: last error: ${(lastError as Error)?.message ?? String(lastError)}`;
      throw new Error(`timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${what}${tail}`, { cause: lastError });
    }
    try {
      await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())), undefined, abort ? { signal: abort } : {});
    } catch (e) {
      throw abort?.aborted ? abort.reason : e;
    }
  }
}

/** SIGKILLs every process (with its descendants) whose root, cwd or command line is under `dir`. */
export async function killProcessesUsing(dir: string): Promise<void> {
  const inside = (p: string) => p === dir || p.startsWith(`${dir}/`);
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const root = await readlink(`/proc/${pid}/root`);
      const cwd = await readlink(`/proc/${pid}/cwd`);
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      if (inside(root) || inside(cwd) || cmdline.some((a) => a.includes(dir))) await killTree(pid, { signal: 'SIGKILL' });
    } catch {
      // gone meanwhile, or a kernel thread
    }
  }
}

/** `pid` and its ancestors up to (not including) PID 1. */
export function ancestors(pid: number = process.pid): Set<number> {
  const out = new Set<number>();
  for (let p = pid; p > 1 && !out.has(p); ) {
    out.add(p);
    const st = readStat(p);
    if (st === undefined) break;
    p = st.ppid;
  }
  return out;
}
