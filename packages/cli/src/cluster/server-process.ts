import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import type { DotmeshClient } from '@dotmesh/rpc/client';
import type { Io } from '../io.ts';
import { commandLineOf, exists, processAlive, run, tail, which } from './system.ts';

/**
 * Starting and stopping dotmesh-server as a process, for `dm cluster init/start/stop/upgrade/
 * reset`. The server's entry accepts `serve --config FILE`, `destroy-pool --config FILE` and
 * `version`, and writes its own pid file.
 */
export const SERVER_BIN_NAME = 'dotmesh-server';

/**
 * Which server to run: --server-bin, else $DOTMESH_SERVER_BIN, else the one this cluster ran
 * last (`recorded`, while it exists), else a dotmesh-server next to the running dm script or
 * bundle, else dotmesh-server on PATH.
 */
export async function resolveServerBin(opts: {
  flag: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  scriptPath: string | undefined;
  recorded?: string | null | undefined;
}): Promise<string> {
  // A path is made absolute (it is recorded, and written into the systemd unit); a bare name runs from PATH.
  if (opts.flag) return opts.flag.includes('/') ? resolve(opts.flag) : opts.flag;
  if (opts.env.DOTMESH_SERVER_BIN)
    return opts.env.DOTMESH_SERVER_BIN.includes('/') ? resolve(opts.env.DOTMESH_SERVER_BIN) : opts.env.DOTMESH_SERVER_BIN;
  if (opts.recorded && (await exists(opts.recorded))) return opts.recorded;
  if (opts.scriptPath) {
    for (const name of [SERVER_BIN_NAME, `${SERVER_BIN_NAME}.mjs`, `${SERVER_BIN_NAME}.js`]) {
      const candidate = join(dirname(opts.scriptPath), name);
      if (await exists(candidate)) return candidate;
    }
  }
  const onPath = await which(SERVER_BIN_NAME, opts.env.PATH);
  if (onPath) return onPath;
  throw new DotmeshError('UNSUPPORTED', 'cannot find dotmesh-server', {
    hint: 'give its path with --server-bin or $DOTMESH_SERVER_BIN',
  });
}

/** The argv to run `<serverBin> <args>`: scripts run under this Node, binaries directly. */
export function serverCommand(serverBin: string, args: readonly string[], nodePath: string): [string, string[]] {
  return /\.(ts|mts|mjs|js|cjs)$/.test(serverBin) ? [nodePath, [serverBin, ...args]] : [serverBin, [...args]];
}

/** Starts the server detached from dm (its own session), output appended to the log file. */
export function startServer(opts: {
  serverBin: string;
  configFile: string;
  logFile: string;
  nodePath: string;
  env: Readonly<Record<string, string | undefined>>;
}): ChildProcess {
  const [command, args] = serverCommand(opts.serverBin, ['serve', '--config', opts.configFile], opts.nodePath);
  const log = openSync(opts.logFile, 'a', 0o600);
  try {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', log, log], env: { ...opts.env } });
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}

/** The output of `<serverBin> version`. */
export async function binaryVersion(serverBin: string, nodePath: string): Promise<string> {
  const [command, args] = serverCommand(serverBin, ['version'], nodePath);
  try {
    return (await run(command, args)).stdout.trim();
  } catch (e) {
    throw new DotmeshError('INVALID_ARGUMENT', `cannot run ${serverBin} version: ${(e as Error).message}`, {
      hint: 'give a dotmesh-server binary or bundle with --server-bin',
    });
  }
}

/**
 * Pings the new server every 250 ms until it answers: `ready`, or `unauthenticated` when it
 * answers but refuses the client's key (it is up; the caller decides what that means). Fails
 * early if the child exits, and after `timeoutMs` with the log's tail in the message.
 */
export async function waitForServer(opts: {
  client: DotmeshClient;
  child: ChildProcess | null;
  logFile: string;
  io: Io;
  timeoutMs?: number;
  now?: () => number;
}): Promise<'ready' | 'unauthenticated'> {
  const now = opts.now ?? Date.now;
  const deadline = now() + (opts.timeoutMs ?? 60_000);
  let exited: number | string | null = null;
  opts.child?.once('exit', (code, signal) => {
    exited = code ?? signal ?? 'unknown';
  });
  for (;;) {
    try {
      await opts.client.call('Ping', {}, { timeoutMs: 2000 });
      return 'ready';
    } catch (e) {
      if (e instanceof DotmeshError && e.code === 'UNAUTHENTICATED') return 'unauthenticated';
    }
    const logTail = async () => (await tail(opts.logFile)) || '(empty log)';
    if (exited !== null) {
      throw new DotmeshError(
        'UNAVAILABLE',
        `dotmesh-server exited (${exited}) before answering. Last lines of ${opts.logFile}:\n${await logTail()}`,
      );
    }
    if (now() >= deadline) {
      throw new DotmeshError(
        'UNAVAILABLE',
        `dotmesh-server did not answer within ${Math.round((opts.timeoutMs ?? 60_000) / 1000)} s. Last lines of ${opts.logFile}:\n${await logTail()}`,
      );
    }
    await opts.io.sleep(250);
  }
}

/**
 * Stops the server whose pid is given: SIGTERM, up to `graceMs` for it to exit, then SIGKILL.
 * Only a process whose command line looks like a dotmesh server (`serve --config`) is signalled,
 * so a recycled pid is never killed. Returns how it ended.
 */
export async function stopServer(
  pid: number,
  io: Io,
  graceMs = 15_000,
): Promise<'terminated' | 'killed' | 'not-running' | 'not-dotmesh'> {
  if (!processAlive(pid)) return 'not-running';
  const cmdline = await commandLineOf(pid);
  if (cmdline !== '' && !/\bserve\b.*--config/.test(cmdline)) return 'not-dotmesh';
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < graceMs; waited += 100) {
    if (!processAlive(pid)) return 'terminated';
    await io.sleep(100);
  }
  if (!processAlive(pid)) return 'terminated';
  process.kill(pid, 'SIGKILL');
  for (let waited = 0; waited < 5000 && processAlive(pid); waited += 100) await io.sleep(100);
  return 'killed';
}
