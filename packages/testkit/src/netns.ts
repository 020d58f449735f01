import { readdirSync } from 'node:fs';
import {
  type CommandResult,
  killTree,
  runCommand,
  type SpawnTrackedOptions,
  spawnTracked,
  type TrackedProcess,
} from './process.ts';

/**
 * Network namespaces made by tests are named `<prefix><suffix>`; the prefix comes from
 * `$DOTMESH_TEST_NETNS_PREFIX` (scripts/test-all sets one per run) or defaults to `dmt-`, so
 * leftovers can be found and removed without touching anyone else's namespaces. Keep the whole
 * name short: interface names derived from it are limited to 15 bytes.
 */
export function netnsPrefix(env: NodeJS.ProcessEnv = process.env): string {
  const p = env.DOTMESH_TEST_NETNS_PREFIX;
  return p === undefined || p === '' ? 'dmt-' : p;
}

export function netnsName(suffix: string, env: NodeJS.ProcessEnv = process.env): string {
  return `${netnsPrefix(env)}${suffix}`;
}

/** Named namespaces (entries of /run/netns) that start with `prefix`. */
export function listNetns(prefix: string, dir = '/run/netns'): string[] {
  if (prefix === '') throw new Error('empty netns prefix would match everything');
  try {
    return readdirSync(dir)
      .filter((n) => n.startsWith(prefix))
      .sort();
  } catch {
    return [];
  }
}

/** Kills every process inside each namespace starting with `prefix`, then deletes it. */
export async function deleteNetnsWithPrefix(prefix: string): Promise<string[]> {
  const names = listNetns(prefix);
  for (const name of names) {
    const { stdout } = await runCommand('ip', ['netns', 'pids', name]).catch(() => ({ stdout: '' }));
    for (const pid of stdout.split('\n').filter(Boolean).map(Number)) await killTree(pid, { graceMs: 2000 });
    await runCommand('ip', ['netns', 'del', name]);
  }
  return names;
}

/** Kills every process inside the namespace `name`, then deletes it; a missing one is fine. */
export async function deleteNetns(name: string): Promise<void> {
  if (listNetns(name).every((n) => n !== name)) return;
  const { stdout } = await runCommand('ip', ['netns', 'pids', name]).catch(() => ({ stdout: '' }));
  for (const pid of stdout.split('\n').filter(Boolean).map(Number)) await killTree(pid, { graceMs: 2000 });
  await runCommand('ip', ['netns', 'del', name]);
}

/** Running commands in the network namespace `/run/netns/...` at `netnsPath`. */
export interface NetnsCommands {
  /** Runs `nsenter --net=<netnsPath> -- cmd args` to completion; rejects on a non-zero exit. */
  exec(
    cmd: string,
    args: readonly string[],
    opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string },
  ): Promise<CommandResult>;
  /** Starts `cmd args` inside the namespace as a tracked process. */
  spawn(cmd: string, args: readonly string[], opts?: SpawnTrackedOptions): TrackedProcess;
}

/**
 * `nsenter --net` (not `ip netns exec`, which remounts /sys: dockerd and kubelets then fail)
 * keeps the shared mount namespace.
 */
export function netnsCommands(netnsPath: string): NetnsCommands {
  const wrap = (cmd: string, args: readonly string[]) => [`--net=${netnsPath}`, '--', cmd, ...args];
  return {
    exec: (cmd, args, opts = {}) => runCommand('nsenter', wrap(cmd, args), opts),
    spawn: (cmd, args, opts = {}) => spawnTracked('nsenter', wrap(cmd, args), opts),
  };
}
