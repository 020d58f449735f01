import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { DotmeshError } from '@dotmesh/core';
import type { ServerConfig } from '@dotmesh/rpc';
import { DotmeshClient, rpcUrl } from '@dotmesh/rpc/client';
import type { CommandContext } from '../context.ts';
import { compareServerVersions } from './semver.ts';
import { binaryVersion, resolveServerBin, stopServer, waitForServer } from './server-process.ts';
import { readServerRecord, writeServerRecord } from './server-record.ts';
import { haltServer, launchServer } from './service.ts';
import { localHost, requireCluster, requireRoot } from './state.ts';
import { runningPid } from './system.ts';

/**
 * `dm cluster upgrade [--server-bin PATH] [--use-pool-dir DIR]`: replaces the running
 * dotmesh-server of this host by a newer one, on the same config. Steps: the running server's
 * version (RPC Version with the `local` remote's key) and the new binary's (`<bin> version`)
 * are compared as semantic versions — an older binary is refused before anything is touched,
 * an equal one leaves the server alone; then the old server is stopped (SIGTERM: it never
 * unmounts the pool, so processes using dots keep their open files and paths), the new one is
 * started on the same config (it migrates the pool format at start if needed; under systemd
 * the unit is rewritten to run it) and pinged until it answers with the new version; it is
 * recorded as the cluster's server (server-record.ts). The store, and so the admin's password,
 * API keys and users, and the TLS certificate are the same before and after. If the new
 * server does not come up, the previous one is started again and the command fails.
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
  requireRoot(ctx, 'dm cluster upgrade', 'it restarts the server');
  const say = (line: string) => ctx.reporter.notice(line);
  const { config, file } = await requireCluster(o.poolDir);
  const previousPid = await runningPid(config.pidFile);
  if (previousPid === null) {
    throw new DotmeshError('UNAVAILABLE', `dotmesh-server is not running (no live process in ${config.pidFile})`, {
      hint: "start it with 'dm cluster start' (with --server-bin <new server> to start the new one directly)",
    });
  }
  const client = await localClient(ctx, config);
  const fromVersion = (await client.call('Version', {})).installed_version;
  const serverBin = await resolveServerBin({ flag: o.serverBin, env: ctx.env, scriptPath: ctx.runtime.scriptPath });
  const toVersion = await binaryVersion(serverBin, ctx.runtime.nodePath);
  const order = compareServerVersions(
    { text: toVersion, what: serverBin },
    { text: fromVersion, what: 'the running dotmesh-server' },
  );
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

  const previous = await readServerRecord(config);
  const previousArgv = (await readFile(`/proc/${previousPid}/cmdline`, 'utf8').catch(() => ''))
    .split('\0')
    .filter((a) => a !== '');
  say(`Stopping dotmesh-server ${fromVersion} (pid ${previousPid}); the pool stays mounted...`);
  await haltServer(ctx, { configFile: file, config });
  say(`Starting dotmesh-server ${toVersion} (${serverBin})...`);
  const { child, systemdUnit } = await launchServer(ctx, { serverBin, configFile: file, config });
  try {
    await waitForServer({ client, child, logFile: config.logFile, io: ctx.io });
    const running = (await client.call('Version', {})).installed_version;
    if (running !== toVersion) throw new DotmeshError('INTERNAL', `the new server reports version ${running}, not ${toVersion}`);
  } catch (e) {
    await haltServer(ctx, { configFile: file, config, graceMs: 5000 }).catch(() => undefined);
    if (child?.pid !== undefined) await stopServer(child.pid, ctx.io, 5000).catch(() => undefined);
    say(`The new server did not come up; starting dotmesh-server ${fromVersion} again...`);
    const again = previous
      ? (await launchServer(ctx, { serverBin: previous.serverBin, configFile: file, config })).child
      : previousArgv.length > 0
        ? startArgv(previousArgv, config.logFile, ctx.env)
        : null;
    await waitForServer({ client, child: again, logFile: config.logFile, io: ctx.io });
    const why = e instanceof Error ? e.message : String(e);
    throw new DotmeshError('UNAVAILABLE', `dotmesh-server ${toVersion} did not start, so ${fromVersion} runs again: ${why}`, {
      hint: `see ${config.logFile}`,
    });
  }
  await writeServerRecord(config, { serverBin, version: toVersion });
  return { ...base, upgraded: true, pid: child?.pid ?? (await runningPid(config.pidFile)), systemdUnit };
}

async function localClient(ctx: CommandContext, config: ServerConfig): Promise<DotmeshClient> {
  const local = (await ctx.loadConfig()).Remotes.local;
  if (!local?.ApiKey) {
    throw new DotmeshError('UNAUTHENTICATED', "No 'local' remote with an API key in the dm config", {
      hint: "dm cluster upgrade uses the admin key that 'dm cluster init' saved as the remote 'local'",
    });
  }
  return new DotmeshClient({
    url: rpcUrl(localHost(config.listenHost), config.port),
    user: local.User || 'admin',
    apiKey: local.ApiKey,
  });
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
    ...(r.systemdUnit ? [`The systemd unit ${r.systemdUnit} now runs ${r.serverBin}.`] : []),
  ];
}
