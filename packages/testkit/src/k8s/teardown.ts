import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { unmountUnder } from '../loop.ts';
import { deleteNetns } from '../netns.ts';
import { ancestors, isAlive, killTree, runCommand } from '../process.ts';
import { cgroupHierarchies, removeCgroupRoot } from './cgroups.ts';
import { releaseHostUser } from './host-state.ts';
import type { NetworkNames } from './network.ts';
import type { NodePaths } from './node.ts';

/**
 * Everything a test cluster creates, named before it is created and written to
 * `<dir>/cluster-state.json`, so that `teardownCluster` can undo it all: after a clean run,
 * after a failed start, or from another process after the owner died (scripts/test-all's
 * leftover cleaner reads the file).
 */
export interface ClusterState {
  readonly id: string;
  readonly dir: string;
  readonly network: NetworkNames;
  readonly nodes: readonly NodePaths[];
  /** Root-namespace routes not through the bridge (known once the network exists). */
  readonly rootRoutes?: readonly (readonly string[])[];
}

export const CLUSTER_STATE_FILE = 'cluster-state.json';

export function readClusterState(dir: string): ClusterState {
  return JSON.parse(readFileSync(join(dir, CLUSTER_STATE_FILE), 'utf8')) as ClusterState;
}

/** Live processes whose command line names a path under `dir/` (components, containerd shims). */
export function clusterProcesses(dir: string): { pid: number; cmd: string }[] {
  const skip = ancestors(process.pid); // never this process or its parents (a teardown inside them)
  const out: { pid: number; cmd: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || skip.has(Number(name))) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(`${dir}/`)) out.push({ pid: Number(name), cmd });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Tasks in a node's cgroup root, in any hierarchy (pod processes, whatever their command line). */
export function cgroupTasks(cgroupRoot: string): number[] {
  const pids = new Set<number>();
  const walk = (d: string) => {
    try {
      for (const line of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.add(Number(line));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // removed meanwhile
    }
  };
  for (const h of cgroupHierarchies()) if (existsSync(join(h, cgroupRoot))) walk(join(h, cgroupRoot));
  return [...pids];
}

/** containerd 1.6 puts each shim's socket at /run/containerd/s/<sha256(address/namespace/id)>. */
export function shimSocketPath(containerdSocket: string, namespace: string, id: string): string {
  return `/run/containerd/s/${createHash('sha256')
    .update(join(containerdSocket, namespace, id))
    .digest('hex')}`;
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The cluster's files in shared host directories: containerd shim sockets of its tasks
 * (/run/containerd/s: a killed shim leaves its socket), libcni's cached results for its pod
 * sandboxes (/var/lib/cni/results, including the `cni-loopback` network containerd adds), and
 * the kubelets' /var/log/containers links into its pod-log directories. Read from the nodes'
 * containerd directories, which outlive containerd: collect them before killing anything.
 */
export function clusterHostFiles(state: ClusterState): string[] {
  const files: string[] = [];
  const results = entries('/var/lib/cni/results');
  for (const n of state.nodes) {
    const tasks = join(n.containerdState, 'io.containerd.runtime.v2.task');
    for (const ns of entries(tasks))
      for (const id of entries(join(tasks, ns))) files.push(shimSocketPath(n.containerdSocket, ns, id));
    const sandboxes = new Set<string>();
    for (const base of [n.containerdRoot, n.containerdState]) {
      for (const id of entries(join(base, 'io.containerd.grpc.v1.cri', 'sandboxes'))) sandboxes.add(id);
    }
    // libcni names a result `<network>-<container id>-<interface>`.
    for (const f of results) {
      if (f.startsWith(`${n.cniNetwork}-`) || [...sandboxes].some((id) => f.includes(`-${id}-`)))
        files.push(join('/var/lib/cni/results', f));
    }
  }
  for (const f of entries('/var/log/containers')) {
    const link = join('/var/log/containers', f);
    try {
      if (readlinkSync(link).startsWith(`${state.dir}/`)) files.push(link);
    } catch {
      // not a link, or gone
    }
  }
  return files.filter((f) => existsSync(f));
}

/**
 * Undoes everything of the cluster `state` describes, whatever state it is in; idempotent. Order:
 * kubelets (so nothing restarts pods), the pods' processes, every other component; the mounts
 * under the cluster's directory; node namespaces and the bridge; cgroups; the host files the
 * kubelets and containerd made; finally the host registration (restoring sysctls when this was
 * the last cluster). Leaves the directory itself (logs) to the caller. Throws, after doing all
 * it can, with every step that failed.
 */
export async function teardownCluster(state: ClusterState): Promise<void> {
  const failures: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
    }
  };
  const dir = state.dir;
  const hostFiles = clusterHostFiles(state);
  await step('stop kubelets', async () => {
    for (const p of clusterProcesses(dir).filter((x) => /\bkubelet\b/.test(x.cmd.split(' ')[0] ?? ''))) {
      await killTree(p.pid, { graceMs: 5000 });
    }
  });
  await step('kill pods', async () => {
    for (const n of state.nodes)
      for (const pid of cgroupTasks(n.cgroupRoot)) if (isAlive(pid)) await killTree(pid, { signal: 'SIGKILL' });
    for (const p of clusterProcesses(dir).filter((x) => x.cmd.includes('containerd-shim')))
      await killTree(p.pid, { signal: 'SIGKILL' });
  });
  await step('stop components', async () => {
    // Newest first: the API server before etcd, containerd after the pods it ran.
    for (const p of clusterProcesses(dir).reverse()) await killTree(p.pid, { graceMs: 5000 });
  });
  await step('unmount', () => unmountUnder(`${dir}/`));
  for (const n of state.network.nodes) await step(`delete netns ${n.netns}`, () => deleteNetns(n.netns));
  for (const name of [...state.network.nodes.map((n) => n.hostVeth), state.network.bridge]) {
    // A veth goes with its peer's namespace, asynchronously: it may vanish between list and delete.
    await step(`delete link ${name}`, () =>
      runCommand('ip', ['link', 'del', name]).catch((e: Error) => {
        if (!/Cannot find device/.test(e.message)) throw e;
      }),
    );
  }
  for (const r of state.rootRoutes ?? []) {
    await step(`delete route ${r.join(' ')}`, () =>
      runCommand('ip', ['route', 'del', ...r]).catch((e: Error) => {
        if (!/No such process/.test(e.message)) throw e;
      }),
    );
  }
  for (const n of state.nodes) await step(`remove cgroup /${n.cgroupRoot}`, () => removeCgroupRoot(n.cgroupRoot));
  await step('remove host files', async () => {
    for (const f of [...hostFiles, ...clusterHostFiles(state)]) await rm(f, { force: true });
  });
  await step('release host registration', () => releaseHostUser(state.id));
  if (failures.length > 0) throw new Error(`test cluster teardown of ${dir} failed:\n${failures.join('\n')}`);
}

/** Tears down every crashed cluster under `root` (directories holding a cluster-state.json). */
export async function teardownClustersUnder(root: string): Promise<string[]> {
  const done: string[] = [];
  for (const name of existsSync(root) ? await readdir(root) : []) {
    const dir = join(root, name);
    if (!existsSync(join(dir, CLUSTER_STATE_FILE))) continue;
    const state = JSON.parse(await readFile(join(dir, CLUSTER_STATE_FILE), 'utf8')) as ClusterState;
    await teardownCluster(state);
    await rm(join(dir, CLUSTER_STATE_FILE), { force: true });
    done.push(dir);
  }
  return done;
}
