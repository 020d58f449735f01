import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireFlock } from '../flock.ts';
import { unmountUnder } from '../loop.ts';
import { deleteNetns } from '../netns.ts';
import { ancestors, isAlive, killTree, runCommand } from '../process.ts';
import { cgroupHierarchies, removeCgroupRoot } from './cgroups.ts';
import { releaseHostUser } from './host-state.ts';
import { type NetworkNames, nodeAddresses, secondOctetOf } from './network.ts';
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
  /** The bridge's address (known once the network exists): the cluster's 10.<b>.0.0/16. */
  readonly gateway?: string;
  /** The index the next added node gets (added-nodes.ts; indexes are never reused). */
  readonly nextNodeIndex?: number;
}

export const CLUSTER_STATE_FILE = 'cluster-state.json';
const STATE_LOCK_FILE = 'cluster-state.lock';

export function readClusterState(dir: string): ClusterState {
  return JSON.parse(readFileSync(join(dir, CLUSTER_STATE_FILE), 'utf8')) as ClusterState;
}

/** Replaces the state file atomically. */
export async function writeClusterState(state: ClusterState): Promise<void> {
  const file = join(state.dir, CLUSTER_STATE_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(state, null, 2));
  await rename(`${file}.tmp`, file);
}

/**
 * Reads, changes and writes a running cluster's state file under a lock in its directory (nodes
 * are added and removed by test processes while the cluster's owner, perhaps another process,
 * runs it). Returns what `change` returned beside the new state.
 */
export async function updateClusterState<T>(
  dir: string,
  change: (s: ClusterState) => { state: ClusterState; result: T },
): Promise<T> {
  const release = await acquireFlock(join(dir, STATE_LOCK_FILE), 60_000);
  try {
    const { state, result } = change(readClusterState(dir));
    await writeClusterState(state);
    return result;
  } finally {
    await release();
  }
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
  return nodeHostFiles(state.nodes, state.dir);
}

/** clusterHostFiles of some nodes: their shim sockets and CNI results, and the log links into `dir`. */
export function nodeHostFiles(nodes: readonly NodePaths[], dir: string): string[] {
  const files: string[] = [];
  const results = entries('/var/lib/cni/results');
  for (const n of nodes) {
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
      if (readlinkSync(link).startsWith(`${dir}/`)) files.push(link);
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
  await stopProcessesUnder(dir, state.nodes, step);
  await step('unmount', () => unmountUnder(`${dir}/`));
  for (const n of state.network.nodes) await step(`delete netns ${n.netns}`, () => deleteNetns(n.netns));
  for (const name of [...state.network.nodes.map((n) => n.hostVeth), state.network.bridge]) {
    await step(`delete link ${name}`, () => deleteLink(name));
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

type Step = (what: string, fn: () => Promise<unknown>) => Promise<void>;

/**
 * Stops what runs for the nodes `nodes` (whose paths are under `dir`): kubelets first, all at
 * once (so nothing restarts pods), the pods' processes (their cgroups) and shims, then every
 * other process whose command line names a path under `dir`, newest first (the API server
 * before etcd, containerd after the pods it ran): each node's own (kube-proxy, containerd)
 * beside the other nodes', then the rest (the control plane).
 */
async function stopProcessesUnder(dir: string, nodes: readonly NodePaths[], step: Step): Promise<void> {
  await step('stop kubelets', () =>
    Promise.all(
      clusterProcesses(dir)
        .filter((x) => /\bkubelet\b/.test(x.cmd.split(' ')[0] ?? ''))
        .map((p) => killTree(p.pid, { graceMs: 5000 })),
    ),
  );
  await step('kill pods', async () => {
    for (const n of nodes)
      for (const pid of cgroupTasks(n.cgroupRoot)) if (isAlive(pid)) await killTree(pid, { signal: 'SIGKILL' });
    for (const p of clusterProcesses(dir).filter((x) => x.cmd.includes('containerd-shim')))
      await killTree(p.pid, { signal: 'SIGKILL' });
  });
  await step('stop components', async () => {
    const newestFirst = clusterProcesses(dir).reverse();
    const ofNode = (n: NodePaths) => newestFirst.filter((p) => p.cmd.includes(`${n.dir}/`));
    await Promise.all(
      nodes.map(async (n) => {
        for (const p of ofNode(n)) await killTree(p.pid, { graceMs: 5000 });
      }),
    );
    for (const p of clusterProcesses(dir).reverse()) await killTree(p.pid, { graceMs: 5000 });
  });
}

/**
 * Every live process of node `name`: its components (their command lines name its directory:
 * kubelet, kube-proxy, containerd and its shims) and its pods' processes (its cgroup root,
 * host-PID pods such as a Dotmesh server included). Empty for a node not in the state.
 */
export function nodeProcessIds(state: ClusterState, name: string): number[] {
  const node = stateNode(state, name);
  if (!node) return [];
  const pids = new Set([...clusterProcesses(node.paths.dir).map((p) => p.pid), ...cgroupTasks(node.paths.cgroupRoot)]);
  return [...pids].filter(isAlive);
}

/** A node of the cluster `state` describes, with its paths and index (undefined: not in the state). */
export function stateNode(
  state: ClusterState,
  name: string,
): { readonly network: NetworkNames['nodes'][number]; readonly paths: NodePaths; readonly index: number } | undefined {
  const network = state.network.nodes.find((n) => n.name === name);
  const paths = state.nodes.find((p) => p.dir === join(state.dir, name));
  const index = Number(/n(\d+)$/.exec(network?.netns ?? '')?.[1]);
  return network && paths && Number.isInteger(index) ? { network, paths, index } : undefined;
}

/**
 * Undoes one node of a running cluster (added-nodes.ts's removal): its kubelet, pods and
 * components, the mounts under its directory, its namespace and veth, the routes to its pods
 * (in the root namespace and the other nodes'), its cgroup root, its host files and its
 * directory. Idempotent; leaves the state file to the caller. Throws, after doing all it can,
 * with every step that failed.
 */
export async function teardownNode(state: ClusterState, name: string): Promise<void> {
  const node = stateNode(state, name);
  if (!node) throw new Error(`the test cluster ${state.id} has no node ${name}`);
  const failures: string[] = [];
  const step: Step = async (what, fn) => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
    }
  };
  const dir = node.paths.dir;
  const hostFiles = nodeHostFiles([node.paths], dir);
  await stopProcessesUnder(dir, [node.paths], step);
  await step('unmount', () => unmountUnder(`${dir}/`));
  await step(`delete netns ${node.network.netns}`, () => deleteNetns(node.network.netns));
  await step(`delete link ${node.network.hostVeth}`, () => deleteLink(node.network.hostVeth));
  if (state.gateway) {
    const { podCidr } = nodeAddresses(secondOctetOf(state.gateway), node.index);
    await step(`delete route ${podCidr}`, () => deleteRoute([], podCidr));
    for (const other of state.network.nodes.filter((n) => n.name !== name))
      await step(`delete route ${podCidr} in ${other.netns}`, () => deleteRoute(['-n', other.netns], podCidr));
  }
  await step(`remove cgroup /${node.paths.cgroupRoot}`, () => removeCgroupRoot(node.paths.cgroupRoot));
  await step('remove host files', async () => {
    for (const f of [...hostFiles, ...nodeHostFiles([node.paths], dir)]) await rm(f, { force: true });
  });
  await step(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  if (failures.length > 0) throw new Error(`teardown of node ${name} of ${state.dir} failed:\n${failures.join('\n')}`);
}

/** `ip link del`; a link already gone is fine (a veth goes with its peer's namespace, asynchronously). */
function deleteLink(name: string): Promise<unknown> {
  return runCommand('ip', ['link', 'del', name]).catch((e: Error) => {
    if (!/Cannot find device/.test(e.message)) throw e;
  });
}

/** `ip [-n NS] route del DST`; a route already gone (or its namespace) is fine. */
function deleteRoute(where: readonly string[], dst: string): Promise<unknown> {
  return runCommand('ip', [...where, 'route', 'del', dst]).catch((e: Error) => {
    if (!/No such process|Cannot open network namespace|No such file/.test(e.message)) throw e;
  });
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
