import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import { type DmOptions, type DmResult, runDmWrapped } from './dm.ts';
import { detachLoopDevicesBackedBy } from './loop.ts';
import { type CommandResult, runCommand, spawnTracked, waitFor } from './process.ts';

/**
 * A host of its own on this machine, for tests of the defaults (`/var/lib/dotmesh`, ports
 * 32606-32608, `/run/docker/plugins/dm.sock`): a process tree in new PID, mount and network
 * namespaces where chosen host directories are replaced by test directories (bind mounts,
 * private to the namespace) and only loopback exists. A cluster installed on the machine with
 * the same defaults is neither seen nor touched, and the test never depends on it being absent.
 *
 * Lifetime: the namespaces live as long as their first process (an idle `sleep`, PID 1 inside),
 * which `cleanup` kills; the kernel then kills every process left inside and drops the private
 * mounts. Loop devices are not namespaced: list the files that may back one in `loopFiles` and
 * cleanup detaches their devices (matched by inode, since a path inside the namespace means
 * nothing outside it).
 */
export interface IsolatedHost {
  /** The host PID of the namespaces' first process (for `/proc/<pid>/mountinfo`, nsenter). */
  readonly pid: number;
  /** Runs a command inside all three namespaces; rejects on a non-zero exit. */
  exec(cmd: string, args: readonly string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<CommandResult>;
  /** Runs the built `dm` inside (never throws for a non-zero exit). */
  dm(args: readonly string[], o: DmOptions): Promise<DmResult>;
  /** The host's mount table, as its processes see it. */
  mountinfo(): string;
}

export interface IsolatedHostOptions {
  readonly cleanup: Cleanup;
  /** Host directory inside the namespaces -> test directory that replaces it (must exist). */
  readonly binds: Readonly<Record<string, string>>;
  /** A test directory for the host's own bookkeeping (its readiness mark). */
  readonly dir: string;
  /** Files (host paths) that may end up backing loop devices made inside. */
  readonly loopFiles?: readonly string[];
}

/** Needs root, util-linux's unshare and nsenter, and iproute2's ip. */
export async function startIsolatedHost(o: IsolatedHostOptions): Promise<IsolatedHost> {
  const ready = join(o.dir, 'isolated-host.ready');
  const mounts = Object.entries(o.binds).flatMap(([target, source]) => [source, target]);
  // $1..: source/target pairs; the last argument is the readiness mark.
  const script = [
    'set -e',
    'while [ "$#" -gt 1 ]; do mount --bind "$1" "$2"; shift 2; done',
    'ip link set lo up',
    ': > "$1"',
    'exec sleep infinity',
  ].join('\n');
  const holder = spawnTracked('unshare', [
    '--pid',
    '--fork',
    '--kill-child',
    '--mount-proc',
    '--mount',
    '--net',
    '--propagation',
    'private',
    '--',
    'sh',
    '-c',
    script,
    'sh',
    ...mounts,
    ready,
  ]);
  // Cleanup runs newest first: the namespaces go, then the loop devices their mounts held.
  o.cleanup.add(() => detachLoopDevicesBackedBy(o.loopFiles ?? []), 'detach loop devices of the isolated host');
  o.cleanup.add(() => holder.stop(), `stop the isolated host (pid ${holder.pid})`);
  const pid = await waitFor(
    () => {
      if (holder.child.exitCode !== null) throw new Error(`unshare exited ${holder.child.exitCode}: ${holder.output()}`);
      if (!existsSync(ready)) return undefined;
      const children = readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, 'utf8').trim().split(/\s+/);
      return Number(children[0]) || undefined;
    },
    { what: 'the isolated host to come up', timeoutMs: 30_000 },
  );
  const enter = ['nsenter', `--target=${pid}`, '--mount', '--net', '--pid', '--'];
  return {
    pid,
    exec: (cmd, args, opts = {}) => runCommand(enter[0]!, [...enter.slice(1), cmd, ...args], opts),
    dm: (args, dmOptions) => runDmWrapped(enter, args, dmOptions),
    mountinfo: () => readFileSync(`/proc/${pid}/mountinfo`, 'utf8'),
  };
}
