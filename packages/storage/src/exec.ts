import { type ChildProcess, spawn as nodeSpawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { DotmeshError } from '@dotmesh/core';

/**
 * The one choke point for external commands (btrfs, mount, losetup, mkfs.btrfs, ...).
 * Contract: every call is logged (command, args, duration, exit code), honours an
 * AbortSignal, runs with a minimal environment (PATH, LANG=C; nothing inherited, so no
 * secret can leak into a child) and can be listed while it runs.
 */

/** pino-compatible subset. */
export interface ExecLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RunOptions {
  readonly signal?: AbortSignal;
  readonly input?: string | Buffer;
  readonly timeoutMs?: number;
  /** Exit codes that count as success (default [0]). */
  readonly okCodes?: readonly number[];
  readonly cwd?: string;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
  readonly durationMs: number;
}

export interface SpawnOptions {
  readonly signal?: AbortSignal;
  readonly cwd?: string;
  /** stdin of the child: a pipe (default) or ignored. */
  readonly stdin?: 'pipe' | 'ignore';
  /** stdout of the child: a pipe (default) or ignored. */
  readonly stdout?: 'pipe' | 'ignore';
  /**
   * The child's fds 3, 4, ...: a pipe (on Linux a socket pair, both ways), or a connected socket
   * the child shares (Node stops reading it when the child starts). stderr is always collected.
   */
  readonly extraFds?: readonly ('pipe' | Socket)[];
}

export interface RunningCommand {
  readonly cmd: string;
  readonly args: readonly string[];
  readonly startedAt: Date;
}

export interface Exec {
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** For streams: the caller owns the child's stdio. Exit is logged; stderr is collected into the log. */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
  running(): RunningCommand[];
}

/**
 * A command failed. `code` is POOL_FULL when the command ran out of space, else INTERNAL.
 * `spawnErrno` is set when the command could not be started at all (`ENOENT`: not installed).
 */
export class ExecError extends DotmeshError {
  readonly cmd: string;
  readonly args: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly spawnErrno: string | undefined;

  constructor(
    cmd: string,
    args: readonly string[],
    exitCode: number | null,
    stderr: string,
    reason?: string,
    spawnErrno?: string,
  ) {
    const full = [cmd, ...args].join(' ');
    const why = reason ?? `exited with code ${exitCode}`;
    const noSpace = reportsNoSpace(stderr);
    super(noSpace ? 'POOL_FULL' : 'INTERNAL', `${full}: ${why}${stderr ? `: ${stderr.trim().slice(0, 2000)}` : ''}`, {
      hint: noSpace ? 'the storage pool is full: delete volumes or commits, or grow the pool' : undefined,
    });
    this.name = 'ExecError';
    this.cmd = cmd;
    this.args = args;
    this.exitCode = exitCode;
    this.stderr = stderr;
    this.spawnErrno = spawnErrno;
  }
}

/**
 * Whether a failed command ran out of space. The tools (btrfs-progs, mkfs, mount) exit with a
 * plain 1 whatever went wrong and print the OS error (strerror(ENOSPC)) on stderr, so their
 * stderr is the only signal: this is the one place that reads it, and it turns it into the
 * POOL_FULL code every caller checks instead.
 */
function reportsNoSpace(stderr: string): boolean {
  return /No space left on device|ENOSPC/i.test(stderr);
}

export const EXEC_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LANG: 'C',
  LC_ALL: 'C',
};

const noopLogger: ExecLogger = { debug: () => {}, warn: () => {} };
const MAX_CAPTURE = 64 * 1024 * 1024;

export function createExec(options: { logger?: ExecLogger } = {}): Exec {
  const logger = options.logger ?? noopLogger;
  const active = new Set<RunningCommand>();

  function track(cmd: string, args: readonly string[], child: ChildProcess): RunningCommand {
    const entry: RunningCommand = { cmd, args: [...args], startedAt: new Date() };
    active.add(entry);
    child.once('close', () => active.delete(entry));
    child.once('error', () => active.delete(entry));
    return entry;
  }

  function spawn(cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const child = nodeSpawn(cmd, [...args], {
      env: { ...EXEC_ENV },
      cwd: opts.cwd,
      signal: opts.signal,
      stdio: [opts.stdin ?? 'pipe', opts.stdout ?? 'pipe', 'pipe', ...(opts.extraFds ?? [])],
    });
    const entry = track(cmd, args, child);
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += d.toString();
    });
    child.once('close', (code, signal) => {
      const durationMs = Date.now() - entry.startedAt.getTime();
      const log = code === 0 ? logger.debug : logger.warn;
      log.call(logger, { cmd, args, code, signal, durationMs, stderr: stderr.trim() || undefined }, 'exec stream finished');
    });
    child.once('error', (err) => logger.warn({ cmd, args, err: err.message }, 'exec stream failed'));
    return child;
  }

  function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const started = Date.now();
    const okCodes = opts.okCodes ?? [0];
    return new Promise<RunResult>((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(new ExecError(cmd, args, null, '', 'aborted before start'));
        return;
      }
      const child = nodeSpawn(cmd, [...args], {
        env: { ...EXEC_ENV },
        cwd: opts.cwd,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
      track(cmd, args, child);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outLen = 0;
      let reason: string | undefined;
      const kill = (why: string) => {
        reason = why;
        child.kill('SIGKILL');
      };
      const onAbort = () => kill('aborted');
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const timer =
        opts.timeoutMs === undefined ? undefined : setTimeout(() => kill(`timed out after ${opts.timeoutMs} ms`), opts.timeoutMs);
      child.stdout?.on('data', (d: Buffer) => {
        outLen += d.length;
        if (outLen <= MAX_CAPTURE) out.push(d);
        else kill('output too large');
      });
      child.stderr?.on('data', (d: Buffer) => err.push(d));
      if (opts.input !== undefined && child.stdin) {
        child.stdin.on('error', () => {}); // EPIPE when the child exits early; the exit code tells
        child.stdin.end(opts.input);
      }
      const finish = (code: number | null, spawnError?: Error) => {
        if (timer) clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        const durationMs = Date.now() - started;
        const stdout = Buffer.concat(out).toString();
        const stderr = Buffer.concat(err).toString();
        const ok = !spawnError && reason === undefined && code !== null && okCodes.includes(code);
        const log = ok ? logger.debug : logger.warn;
        log.call(logger, { cmd, args, code, durationMs, stderr: ok ? undefined : stderr.trim() || undefined }, 'exec');
        if (ok) resolve({ stdout, stderr, code: code as number, durationMs });
        else {
          const errno = (spawnError as NodeJS.ErrnoException | undefined)?.code;
          reject(new ExecError(cmd, args, code, stderr, spawnError ? spawnError.message : reason, errno));
        }
      };
      let done = false;
      child.once('error', (e) => {
        if (done) return;
        done = true;
        finish(null, e);
      });
      child.once('close', (code) => {
        if (done) return;
        done = true;
        finish(code);
      });
    });
  }

  return { run, spawn, running: () => [...active] };
}
