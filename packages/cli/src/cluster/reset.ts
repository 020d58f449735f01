import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { etcdMemberFiles } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';
import { stopLeftoverEtcd } from './etcd-member.ts';
import { resolveServerBin, serverCommand, stopServer } from './server-process.ts';
import { serverRecordPath } from './server-record.ts';
import { loadServerConfig, requireRoot } from './state.ts';
import { run, runningPid } from './system.ts';
import { removeUnit } from './systemd.ts';

/**
 * `dm cluster reset [--use-pool-dir DIR] [--destroy-data]`: stops the server (SIGTERM, 15 s,
 * SIGKILL), removes the systemd unit, with --destroy-data runs `destroy-pool` (the server
 * removes the pool), removes the store, config and credentials from the state dir (the pool and
 * the log are kept without --destroy-data; a managed etcd member's data dir goes with the store),
 * and forgets the `local` remote. Idempotent.
 */
export interface ClusterResetOptions {
  readonly poolDir: string;
  readonly destroyData: boolean;
  readonly serverBin: string | undefined;
}

export interface ClusterResetResult {
  stopped: 'terminated' | 'killed' | 'not-running' | 'not-dotmesh';
  pid: number | null;
  systemdUnitRemoved: boolean;
  poolDestroyed: boolean;
  removed: string[];
  remoteRemoved: boolean;
}

export async function clusterReset(ctx: CommandContext, o: ClusterResetOptions): Promise<ClusterResetResult> {
  requireRoot(ctx, 'dm cluster reset', 'it stops the server and removes its state');
  const say = (line: string) => ctx.reporter.notice(line);
  const { config, file } = await loadServerConfig(o.poolDir);
  const systemdUnitRemoved = await removeUnit(file);
  if (systemdUnitRemoved) say('Removed the systemd unit dotmesh-server.service');
  const pid = await runningPid(config.pidFile);
  const stopped = pid === null ? 'not-running' : await stopServer(pid, ctx.io);
  if (stopped === 'not-dotmesh') {
    throw new DotmeshError('CONFLICT', `pid ${pid} in ${config.pidFile} is not a dotmesh-server; not stopping it`, {
      hint: `check the process, remove ${config.pidFile} if it is stale, and run dm cluster reset again`,
    });
  }
  if (pid !== null) say(`Stopped dotmesh-server (pid ${pid}, ${stopped})`);
  const etcdPid = await stopLeftoverEtcd(config);
  if (etcdPid !== null) say(`Stopped the etcd member a killed server left running (pid ${etcdPid})`);

  let poolDestroyed = false;
  if (o.destroyData) {
    const serverBin = await resolveServerBin({ flag: o.serverBin, env: ctx.env, scriptPath: ctx.runtime.scriptPath });
    const [command, args] = serverCommand(serverBin, ['destroy-pool', '--config', file], ctx.runtime.nodePath);
    try {
      await run(command, args);
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new DotmeshError('INTERNAL', `destroy-pool failed: ${(err.stderr || err.message).trim()}`);
    }
    poolDestroyed = true;
    say(`Destroyed the pool in ${config.poolDir}`);
  }

  const etcd = etcdMemberFiles(config);
  const sqliteSidecars = [`${config.storeFile}-wal`, `${config.storeFile}-shm`, `${config.storeFile}-journal`];
  const targets = o.destroyData
    ? [config.stateDir]
    : [
        config.storeFile,
        ...sqliteSidecars,
        // A managed etcd member's data is this node's copy of the store.
        etcd.dataDir,
        etcd.statusFile,
        etcd.pidFile,
        file,
        config.initialAdminFile,
        config.pidFile,
        serverRecordPath(config),
      ];
  for (const target of targets) await rm(target, { recursive: true, force: true });

  const dmConfig = await ctx.loadConfig();
  const remoteRemoved = Object.hasOwn(dmConfig.Remotes, 'local');
  if (remoteRemoved) {
    delete dmConfig.Remotes.local;
    if (dmConfig.CurrentRemote === 'local') dmConfig.CurrentRemote = '';
    await ctx.saveConfig();
  }
  await rm(join(dirname(ctx.options.configPath), 'admin-password.txt'), { force: true });
  return { stopped, pid, systemdUnitRemoved, poolDestroyed, removed: targets, remoteRemoved };
}

export function renderClusterReset(r: ClusterResetResult): string[] {
  return [
    r.pid === null ? 'dotmesh-server was not running.' : '',
    r.poolDestroyed ? 'All dots and their data are gone.' : 'The pool and its data are kept (use --destroy-data to remove them).',
    r.remoteRemoved ? "Removed the remote 'local'." : '',
  ].filter((l) => l !== '');
}
