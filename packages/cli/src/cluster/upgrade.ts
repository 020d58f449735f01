import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { DotmeshError } from '@dotmesh/core';
import type { ServerConfig } from '@dotmesh/rpc';
import { DotmeshClient, rpcUrl } from '@dotmesh/rpc/client';
import type { CommandContext } from '../context.ts';
import { loadServerConfig } from './reset.ts';
import { compareSemVer, parseSemVer } from './semver.ts';
import { resolveServerBin, serverCommand, startServer, stopServer, waitForServer } from './server-process.ts';
import { exists, run, runningPid } from './system.ts';
import { installUnit, UNIT_NAME, UNIT_PATH } from './systemd.ts';

/**
 * `dm cluster upgrade [--server-bin PATH] [--use-pool-dir DIR]`: replaces the running
 * dotmesh-server of this host by a newer one, on the same config. Steps: the running server's
 * version (RPC Version with the `local` remote's key) and the new binary's (`<bin> version`)
 * are compared as semantic versions — an older binary is refused before anything is touched,
 * an equal one leaves the server alone; then the old server is stopped (SIGTERM: it never
 * unmounts the pool, so processes using dots keep their open files and paths), the new one is
 * started on the same config (it migrates the pool format at start if needed) and pinged until
 * it answers with the new version. If it does not come up, the previous server is started
 * again with its old command line and the command fails. The systemd unit, when installed, is
 * rewritten to run the new binary.
 */
export interface ClusterUpgradeOptions {
  readonly poolDir: string;
  readonly serverBin: string | undefined;
}

export interface ClusterUpgradeResult {
  fromVersion: string;
  toVersion: string;
  upgraded: boolean;
  serverBin: string;
  previousPid: number;
  pid: number | null;
  systemdUnit: string | null;
}

export async function clusterUpgrade(ctx: CommandContext, o: ClusterUpgradeOptions): Promise<ClusterUpgradeResult> {
  if (ctx.runtime.uid !== 0) {
    throw new DotmeshError('PERMISSION_DENIED', 'dm cluster upgrade must run as root: it restarts the server', {
      hint: 'run it again with sudo',
    });
  }
  const say = (line: string) => ctx.reporter.notice(line);
  const { config, file } = await loadServerConfig(o.poolDir);
  if (!(await exists(file))) {
    throw new DotmeshError('UNAVAILABLE', `No dotmesh cluster in ${o.poolDir} (no ${file})`, {
      hint: "start one with 'dm cluster init', or give its --use-pool-dir",
    });
  }
  const previousPid = await runningPid(config.pidFile);
  if (previousPid === null) {
    throw new DotmeshError('UNAVAILABLE', `dotmesh-server is not running (no live process in ${config.pidFile})`, {
      hint: "start it with 'dm cluster init' (with the new server's --server-bin)",
    });
  }
  const client = await localClient(ctx, config);
  const fromVersion = (await client.call('Version', {})).installed_version;
  const serverBin = await resolveServerBin({ flag: o.serverBin, env: ctx.env, scriptPath: ctx.runtime.scriptPath });
  const toVersion = await binaryVersion(serverBin, ctx.runtime.nodePath);
  const order = compareSemVer(parseSemVer(toVersion, serverBin), parseSemVer(fromVersion, 'the running dotmesh-server'));
  if (order < 0) {
    throw new DotmeshError(
      'CONFLICT',
      `Refusing to downgrade dotmesh-server from ${fromVersion} to ${toVersion} (${serverBin})`,
      { hint: `the running server may already have migrated the pool; use a dotmesh-server of version ${fromVersion} or newer` },
    );
  }
  const base = { fromVersion, toVersion, serverBin, previousPid, systemdUnit: null };
  if (order === 0) {
    say(`dotmesh-server ${fromVersion} is running already; nothing to do.`);
    return { ...base, upgraded: false, pid: previousPid };
  }

  const previousArgv = (await readFile(`/proc/${previousPid}/cmdline`, 'utf8').catch(() => ''))
    .split('\0')
    .filter((a) => a !== '');
  say(`Stopping dotmesh-server ${fromVersion} (pid ${previousPid}); the pool stays mounted...`);
  const stopped = await stopServer(previousPid, ctx.io);
  if (stopped === 'not-dotmesh') {
    throw new DotmeshError('CONFLICT', `pid ${previousPid} in ${config.pidFile} is not a dotmesh-server; not stopping it`);
  }
  say(`Starting dotmesh-server ${toVersion} (${serverBin})...`);
  const child = startServer({
    serverBin,
    configFile: file,
    logFile: config.logFile,
    nodePath: ctx.runtime.nodePath,
    env: ctx.env,
  });
  try {
    await waitForServer({ client, child, logFile: config.logFile, io: ctx.io });
    const running = (await client.call('Version', {})).installed_version;
    if (running !== toVersion) throw new DotmeshError('INTERNAL', `the new server reports version ${running}, not ${toVersion}`);
  } catch (e) {
    if (child.pid !== undefined) await stopServer(child.pid, ctx.io, 5000).catch(() => undefined);
    if (previousArgv.length > 0) {
      say(`The new server did not come up; starting dotmesh-server ${fromVersion} again...`);
      const again = startArgv(previousArgv, config.logFile, ctx.env);
      await waitForServer({ client, child: again, logFile: config.logFile, io: ctx.io });
    }
    const why = e instanceof Error ? e.message : String(e);
    throw new DotmeshError('UNAVAILABLE', `dotmesh-server ${toVersion} did not start, so ${fromVersion} runs again: ${why}`, {
      hint: `see ${config.logFile}`,
    });
  }
  let systemdUnit: string | null = null;
  if (await exists(UNIT_PATH)) {
    await installUnit([...serverCommand(serverBin, ['serve', '--config', file], ctx.runtime.nodePath).flat()]);
    systemdUnit = UNIT_NAME;
  }
  return { ...base, upgraded: true, pid: child.pid ?? null, systemdUnit };
}

async function localClient(ctx: CommandContext, config: ServerConfig): Promise<DotmeshClient> {
  const local = (await ctx.loadConfig()).Remotes.local;
  if (!local?.ApiKey) {
    throw new DotmeshError('UNAUTHENTICATED', "No 'local' remote with an API key in the dm config", {
      hint: "dm cluster upgrade uses the admin key that 'dm cluster init' saved as the remote 'local'",
    });
  }
  const host = config.listenHost === '0.0.0.0' || config.listenHost === '::' ? '127.0.0.1' : config.listenHost;
  return new DotmeshClient({ url: rpcUrl(host, config.port), user: local.User || 'admin', apiKey: local.ApiKey });
}

/** The output of `<serverBin> version`. */
async function binaryVersion(serverBin: string, nodePath: string): Promise<string> {
  const [command, args] = serverCommand(serverBin, ['version'], nodePath);
  try {
    return (await run(command, args)).stdout.trim();
  } catch (e) {
    throw new DotmeshError('INVALID_ARGUMENT', `cannot run ${serverBin} version: ${(e as Error).message}`, {
      hint: 'give a dotmesh-server binary or bundle with --server-bin',
    });
  }
}

/** Starts a command line detached (as startServer does), output appended to the log. */
function startArgv(argv: readonly string[], logFile: string, env: Readonly<Record<string, string | undefined>>) {
  const log = openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log], env: { ...env } });
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}

export function renderClusterUpgrade(r: ClusterUpgradeResult): string[] {
  if (!r.upgraded) return [];
  return [
    `Upgraded dotmesh-server from ${r.fromVersion} to ${r.toVersion} (pid ${r.pid ?? '?'}).`,
    ...(r.systemdUnit ? [`Updated the systemd unit ${r.systemdUnit} to run ${r.serverBin}.`] : []),
  ];
}
