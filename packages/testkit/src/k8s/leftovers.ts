import { existsSync } from 'node:fs';
import { listLoopDevicesFor, mountsUnder } from '../loop.ts';
import { listNetns } from '../netns.ts';
import { isAlive, runCommand } from '../process.ts';
import { cgroupRootLeftovers } from './cgroups.ts';
import type { TestClusterNode } from './cluster.ts';
import { type HostSnapshot, hostUsers, snapshotHost } from './host-state.ts';
import { type ClusterState, cgroupTasks, clusterHostFiles, clusterProcesses, nodeHostFiles } from './teardown.ts';

/**
 * What a running test cluster has on the host, recorded before `stop()` so that a test can
 * then check that every piece is gone (`clusterLeftovers`).
 */
export interface ClusterFootprint {
  readonly pids: readonly number[];
  /** clusterHostFiles: shim sockets, CNI results, container log links. */
  readonly hostFiles: readonly string[];
  readonly mounts: readonly string[];
}

export function clusterFootprint(state: ClusterState): ClusterFootprint {
  const pids = new Set(clusterProcesses(state.dir).map((p) => p.pid));
  for (const n of state.nodes) for (const pid of cgroupTasks(n.cgroupRoot)) pids.add(pid);
  return { pids: [...pids], hostFiles: clusterHostFiles(state), mounts: mountsUnder(`${state.dir}/`) };
}

/**
 * Everything of the cluster still on the host (an empty list once torn down). `before` is the
 * host's state before any test cluster changed it (hostBaseline, taken before the cluster
 * started): with no other test cluster registered any more, the sysctls and shared paths must
 * be back to it.
 */
export async function clusterLeftovers(
  state: ClusterState,
  footprint: ClusterFootprint,
  before: HostSnapshot,
): Promise<string[]> {
  const left: string[] = [];
  for (const pid of footprint.pids) if (isAlive(pid)) left.push(`process ${pid}`);
  for (const p of clusterProcesses(state.dir)) left.push(`process ${p.pid} (${p.cmd.slice(0, 120)})`);
  for (const m of mountsUnder(`${state.dir}/`)) left.push(`mount ${m}`);
  for (const d of await listLoopDevicesFor(`${state.dir}/`)) left.push(`loop device ${d.name} (${d.backFile})`);
  for (const n of state.network.nodes) if (listNetns(n.netns).includes(n.netns)) left.push(`netns ${n.netns}`);
  const { stdout } = await runCommand('ip', ['-j', 'link', 'show']);
  const links = new Set((JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname));
  for (const name of [state.network.bridge, ...state.network.nodes.map((n) => n.hostVeth)])
    if (links.has(name)) left.push(`link ${name}`);
  const { stdout: routes } = await runCommand('ip', ['route', 'show', 'table', 'all']);
  for (const r of state.rootRoutes ?? []) if (routes.includes(r.join(' '))) left.push(`route ${r.join(' ')}`);
  for (const n of state.nodes) for (const c of cgroupRootLeftovers(n.cgroupRoot)) left.push(`cgroup ${c}`);
  for (const f of footprint.hostFiles) if (existsSync(f)) left.push(`file ${f}`);
  if (existsSync(state.dir)) left.push(`directory ${state.dir}`);
  const users = await hostUsers();
  if (users.includes(state.id)) left.push(`host registration ${state.id}`);
  if (users.length === 0) {
    const now = snapshotHost();
    for (const [k, v] of Object.entries(before.sysctls))
      if (now.sysctls[k] !== v) left.push(`sysctl ${k} = ${now.sysctls[k]} (was ${v})`);
    // (/run/containerd is left out: Docker's containerd on this host may use it meanwhile.)
    for (const p of now.existing) if (!p.startsWith('/run/') && !before.existing.includes(p)) left.push(`host path ${p}`);
  }
  return left;
}

/**
 * What a node removed from a running cluster (removeClusterNode) left on the host: an empty
 * list once it is gone. `node` is its handle, `hostFiles` its nodeHostFiles taken before the
 * removal; `others` the network namespaces of the nodes still there (none may keep a route to
 * its pods).
 */
export async function nodeLeftovers(
  node: TestClusterNode,
  hostFiles: readonly string[],
  others: readonly { readonly netns: string }[],
): Promise<string[]> {
  const left: string[] = [];
  const dir = node.paths.dir;
  for (const p of clusterProcesses(dir)) left.push(`process ${p.pid} (${p.cmd.slice(0, 120)})`);
  for (const pid of cgroupTasks(node.paths.cgroupRoot)) left.push(`process ${pid} in its cgroup`);
  for (const m of mountsUnder(`${dir}/`)) left.push(`mount ${m}`);
  for (const d of await listLoopDevicesFor(`${dir}/`)) left.push(`loop device ${d.name} (${d.backFile})`);
  if (listNetns(node.netns).includes(node.netns)) left.push(`netns ${node.netns}`);
  const hostVeth = node.netns.replace(/n(\d+)$/, 'v$1');
  const { stdout } = await runCommand('ip', ['-j', 'link', 'show']);
  if ((JSON.parse(stdout) as { ifname: string }[]).some((l) => l.ifname === hostVeth)) left.push(`link ${hostVeth}`);
  const routeTo = async (where: readonly string[]) =>
    (await runCommand('ip', [...where, 'route', 'show', node.podCidr])).stdout.trim() !== '';
  if (await routeTo([])) left.push(`route to ${node.podCidr}`);
  for (const o of others) if (await routeTo(['-n', o.netns])) left.push(`route to ${node.podCidr} in ${o.netns}`);
  for (const c of cgroupRootLeftovers(node.paths.cgroupRoot)) left.push(`cgroup ${c}`);
  for (const f of [...hostFiles, ...nodeHostFiles([node.paths], dir)]) if (existsSync(f)) left.push(`file ${f}`);
  if (existsSync(dir)) left.push(`directory ${dir}`);
  return left;
}
