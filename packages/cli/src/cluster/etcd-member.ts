import { readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { type EtcdMemberStatus, etcdMemberFiles, type ServerConfig } from '@dotmesh/rpc';
import { commandLineOf, processAlive } from './system.ts';

/**
 * The managed etcd member of this host's node, as `dm cluster` commands see it: the status the
 * server wrote once the member voted (`<stateDir>/etcd-member.json`), and the member a server
 * killed with -9 left running (its pid file), which `dm cluster stop` and `reset` stop.
 */
export async function readEtcdMemberStatus(config: Pick<ServerConfig, 'stateDir'>): Promise<EtcdMemberStatus | null> {
  const text = await readFile(etcdMemberFiles(config).statusFile, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as EtcdMemberStatus;
  } catch {
    return null;
  }
}

/**
 * Stops (SIGTERM, SIGKILL after 10 s) the etcd whose pid the pid file holds when that process
 * is an etcd on this node's data dir; returns its pid, null when there was none.
 */
export async function stopLeftoverEtcd(config: Pick<ServerConfig, 'stateDir'>): Promise<number | null> {
  const files = etcdMemberFiles(config);
  const pid = Number.parseInt(await readFile(files.pidFile, 'utf8').catch(() => ''), 10);
  if (!Number.isInteger(pid) || pid <= 1 || !processAlive(pid)) return null;
  const cmdline = await commandLineOf(pid);
  if (!/etcd/.test(cmdline.split(' ')[0] ?? '') || !cmdline.includes(`--data-dir=${files.dataDir}`)) return null;
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; processAlive(pid) && waited < 10_000; waited += 100) await sleep(100);
  if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let waited = 0; processAlive(pid) && waited < 5000; waited += 50) await sleep(50);
  await rm(files.pidFile, { force: true });
  return pid;
}
