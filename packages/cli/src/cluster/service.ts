import type { ChildProcess } from 'node:child_process';
import { DotmeshError } from '@dotmesh/core';
import type { ServerConfig } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';
import { compareServerVersions } from './semver.ts';
import { binaryVersion, resolveServerBin, serverCommand, startServer, stopServer } from './server-process.ts';
import { readServerRecord } from './server-record.ts';
import { portFree, run, runningPid } from './system.ts';
import { installUnit, managedBySystemd, UNIT_NAME } from './systemd.ts';

/**
 * Starting and stopping a configured cluster's server, one way per host, for `dm cluster
 * init`, `start`, `stop` and `upgrade`: where systemd runs this cluster's unit, through
 * `systemctl` (so systemd keeps supervising it); elsewhere as a detached process found by its
 * pid file.
 */

/** The argv that runs `serverBin` on a config file (the systemd unit's ExecStart). */
export function serveArgv(serverBin: string, configFile: string, nodePath: string): string[] {
  return serverCommand(serverBin, ['serve', '--config', configFile], nodePath).flat();
}

/**
 * Starts the server of `configFile`. Under systemd the unit is rewritten to run `serverBin` and
 * started; elsewhere a detached process is spawned. Returns the child to watch (null under
 * systemd) and the unit used.
 */
export async function launchServer(
  ctx: CommandContext,
  o: { serverBin: string; configFile: string; config: ServerConfig },
): Promise<{ child: ChildProcess | null; systemdUnit: string | null }> {
  if (await managedBySystemd(o.configFile)) {
    await installUnit(serveArgv(o.serverBin, o.configFile, ctx.runtime.nodePath));
    await systemctl('start');
    return { child: null, systemdUnit: UNIT_NAME };
  }
  const child = startServer({
    serverBin: o.serverBin,
    configFile: o.configFile,
    logFile: o.config.logFile,
    nodePath: ctx.runtime.nodePath,
    env: ctx.env,
  });
  return { child, systemdUnit: null };
}

export interface HaltResult {
  /** The server's pid when it was running, else null. */
  pid: number | null;
  stopped: 'terminated' | 'killed' | 'not-running';
  systemdUnit: string | null;
}

/**
 * Stops the server of `configFile` and waits until it is gone: `systemctl stop` under systemd,
 * then SIGTERM to the pid file's process (SIGKILL after `graceMs`). It never unmounts the pool.
 * A pid file naming a process that is not a dotmesh server is a CONFLICT (nothing is signalled).
 */
export async function haltServer(
  ctx: CommandContext,
  o: { configFile: string; config: ServerConfig; graceMs?: number },
): Promise<HaltResult> {
  const pid = await runningPid(o.config.pidFile);
  let systemdUnit: string | null = null;
  if (await managedBySystemd(o.configFile)) {
    await systemctl('stop');
    systemdUnit = UNIT_NAME;
  }
  const left = await runningPid(o.config.pidFile);
  const stopped = left === null ? 'terminated' : await stopServer(left, ctx.io, o.graceMs);
  if (stopped === 'not-dotmesh') {
    throw new DotmeshError('CONFLICT', `pid ${left} in ${o.config.pidFile} is not a dotmesh-server; not stopping it`, {
      hint: `check the process, and remove ${o.config.pidFile} if it is stale`,
    });
  }
  return { pid, stopped: pid === null ? 'not-running' : stopped, systemdUnit };
}

/**
 * The server to run for this cluster — `--server-bin`, `$DOTMESH_SERVER_BIN`, the one it ran
 * last, next to dm, on PATH — with its version. A binary older than the one the cluster last
 * ran is refused (CONFLICT): the newer one may have migrated the pool.
 */
export async function serverToRun(
  ctx: CommandContext,
  config: ServerConfig,
  flag: string | undefined,
): Promise<{ serverBin: string; version: string }> {
  const record = await readServerRecord(config);
  const serverBin = await resolveServerBin({
    flag,
    env: ctx.env,
    scriptPath: ctx.runtime.scriptPath,
    recorded: record?.serverBin,
  });
  const version = await binaryVersion(serverBin, ctx.runtime.nodePath);
  if (
    record &&
    compareServerVersions({ text: version, what: serverBin }, { text: record.version, what: 'the recorded server' }) < 0
  ) {
    throw new DotmeshError(
      'CONFLICT',
      `Refusing to run dotmesh-server ${version} (${serverBin}): this cluster last ran ${record.version} (${record.serverBin})`,
      {
        hint: `the newer server may have migrated the pool; give a dotmesh-server of version ${record.version} or newer with --server-bin`,
      },
    );
  }
  return { serverBin, version };
}

/** The ports of `config` that something else already listens on. */
export async function portsInUse(
  config: Pick<ServerConfig, 'listenHost' | 'port' | 'checkPort' | 'tlsPort' | 'clusterPort' | 'etcdMember'>,
): Promise<number[]> {
  const taken: number[] = [];
  const member = config.etcdMember ? [config.etcdMember.clientPort, config.etcdMember.peerPort] : [];
  const ports = [config.port, config.checkPort, ...[config.tlsPort, config.clusterPort].filter((p) => p !== 0), ...member];
  for (const port of ports) if (!(await portFree(config.listenHost, port))) taken.push(port);
  return taken;
}

async function systemctl(verb: 'start' | 'stop'): Promise<void> {
  try {
    await run('systemctl', [verb, UNIT_NAME]);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new DotmeshError('UNAVAILABLE', `systemctl ${verb} ${UNIT_NAME} failed: ${(err.stderr || err.message).trim()}`, {
      hint: `see 'systemctl status ${UNIT_NAME}' and 'journalctl -u ${UNIT_NAME}'`,
    });
  }
}
