import type { CommandContext } from '../context.ts';
import { stopLeftoverEtcd } from './etcd-member.ts';
import { type HaltResult, haltServer } from './service.ts';
import { requireCluster, requireRoot, startCommand } from './state.ts';

/**
 * `dm cluster stop [--use-pool-dir DIR]`: stops this host's server gracefully and waits until
 * it is gone (SIGTERM; SIGKILL only after 15 s; under systemd `systemctl stop`). The pool stays
 * mounted, so processes and containers using dots keep their files; `dm` commands need the
 * server until `dm cluster start`. A managed etcd member stops with the server (after it). Nothing
 * is forgotten (unlike `dm cluster reset`).
 * Idempotent.
 */
export interface ClusterStopResult extends HaltResult {
  startCommand: string;
}

export async function clusterStop(ctx: CommandContext, o: { readonly poolDir: string }): Promise<ClusterStopResult> {
  requireRoot(ctx, 'dm cluster stop', 'it stops the server');
  const { config, file } = await requireCluster(o.poolDir);
  const halted = await haltServer(ctx, { configFile: file, config });
  // The server stops its etcd member after itself; one a killed server left is stopped here.
  await stopLeftoverEtcd(config);
  return { ...halted, startCommand: startCommand(o.poolDir) };
}

export function renderClusterStop(r: ClusterStopResult): string[] {
  if (r.pid === null) return ['dotmesh-server was not running.'];
  return [
    `Stopped dotmesh-server (pid ${r.pid}, ${r.stopped}${r.systemdUnit ? `, systemd unit ${r.systemdUnit}` : ''}).`,
    `The pool stays mounted: processes using dots keep their files. Start the server again with '${r.startCommand}'.`,
  ];
}
