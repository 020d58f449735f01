import { DotmeshError } from '@dotmesh/core';
import type { ServerConfig } from '@dotmesh/rpc';
import { DotmeshClient, rpcUrl } from '@dotmesh/rpc/client';
import type { CommandContext } from '../context.ts';
import { stopLeftoverEtcd } from './etcd-member.ts';
import { waitForServer } from './server-process.ts';
import { writeServerRecord } from './server-record.ts';
import { launchServer, portsInUse, serverToRun } from './service.ts';
import { localHost, requireCluster, requireRoot } from './state.ts';
import { runningPid } from './system.ts';
import { pinLocalServer } from './tls.ts';

/**
 * `dm cluster start [--use-pool-dir DIR] [--server-bin PATH]`: brings this host's configured
 * server back — after `dm cluster stop`, a crash or a reboot — on the config `dm cluster init`
 * wrote, with the binary the cluster ran last (service.ts `serverToRun`). It makes nothing new:
 * the store keeps the admin's password, API keys and users, the state dir keeps the TLS
 * certificate, so remotes and pins elsewhere keep working. The server mounts the pool again
 * if a reboot unmounted it. Idempotent: a running server is left alone. Under systemd it
 * starts the unit.
 */
export interface ClusterStartOptions {
  readonly poolDir: string;
  readonly serverBin: string | undefined;
}

export interface ClusterStartResult {
  /** False when the server was running already. */
  started: boolean;
  pid: number | null;
  serverBin: string | null;
  version: string | null;
  url: string;
  systemdUnit: string | null;
  /** Whether the server accepts the `local` remote's API key of this dm config (`none`: no such remote). */
  localRemote: 'accepted' | 'refused' | 'none';
  tlsFingerprint: string | null;
  /** The cluster CA pin known_servers holds for this host's HTTPS port (null: the certificate's fingerprint, or no HTTPS). */
  tlsCaPin: string | null;
}

export async function clusterStart(ctx: CommandContext, o: ClusterStartOptions): Promise<ClusterStartResult> {
  requireRoot(ctx, 'dm cluster start', 'it mounts the pool and starts the server');
  const say = (line: string) => ctx.reporter.notice(line);
  const { config, file } = await requireCluster(o.poolDir);
  const host = localHost(config.listenHost);
  const url = rpcUrl(host, config.port);
  const running = await runningPid(config.pidFile);
  const nothing = {
    serverBin: null,
    version: null,
    url,
    systemdUnit: null,
    localRemote: 'none',
    tlsFingerprint: null,
    tlsCaPin: null,
  } as const;
  if (running !== null) {
    say(`dotmesh-server is running already (pid ${running}); nothing to do.`);
    return { ...nothing, started: false, pid: running };
  }
  // An etcd member a killed server left running holds its ports: the server starts it again.
  await stopLeftoverEtcd(config);
  const taken = await portsInUse(config);
  if (taken.length > 0) {
    throw new DotmeshError('CONFLICT', `port ${taken.join(', ')} of ${file} is already in use`, {
      hint: "stop what listens there, or change the port: 'dm cluster init --port <n>' (or --check-port, --tls-port) on this pool dir",
    });
  }
  const { serverBin, version } = await serverToRun(ctx, config, o.serverBin);
  const { child, systemdUnit } = await launchServer(ctx, { serverBin, configFile: file, config });
  say(
    `Started dotmesh-server ${version}${child ? ` (pid ${child.pid ?? '?'})` : ` (systemd unit ${systemdUnit})`}, log: ${config.logFile}`,
  );
  say(`Waiting for dotmesh-server to answer at ${url}...`);
  const local = (await ctx.loadConfig()).Remotes.local;
  const key = local?.ApiKey && local.Port === config.port ? local.ApiKey : '';
  // Without a key of this dm config, an answer that refuses no key at all still says the server is up.
  const answer = await waitForServer({
    client: new DotmeshClient({ url, user: 'admin', apiKey: key }),
    child,
    logFile: config.logFile,
    io: ctx.io,
  });
  await writeServerRecord(config, { serverBin, version });
  return {
    started: true,
    pid: child?.pid ?? (await runningPid(config.pidFile)),
    serverBin,
    version,
    url,
    systemdUnit,
    localRemote: key === '' ? 'none' : answer === 'ready' ? 'accepted' : 'refused',
    ...(await pinned(ctx, config, host)),
  };
}

async function pinned(ctx: CommandContext, config: ServerConfig, host: string) {
  const pin = await pinLocalServer(ctx, config, host);
  return { tlsFingerprint: pin?.fingerprint ?? null, tlsCaPin: pin?.caPin ?? null };
}

export function renderClusterStart(r: ClusterStartResult): string[] {
  if (!r.started) return [];
  return [
    `dotmesh-server ${r.version} is ready at ${r.url}.`,
    ...(r.tlsFingerprint
      ? [
          `HTTPS API certificate SHA256 fingerprint ${r.tlsFingerprint} (unchanged unless it expired)${r.tlsCaPin ? `; pinned in known_servers by its cluster CA ${r.tlsCaPin}` : ''}`,
        ]
      : []),
    ...(r.localRemote === 'refused'
      ? ["The server refuses the API key of the remote 'local' in this dm config: it is not this cluster's admin key."]
      : []),
  ];
}
