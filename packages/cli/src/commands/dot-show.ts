import { type DotName, deMasterify, formatDotName, MASTER_BRANCH, parseDotName } from '@dotmesh/core';
import type { DotmeshVolume } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';
import { goStringSlice, prettySize } from '../format.ts';
import { parseDotArg } from '../namespace.ts';
import { allBranches } from './branch.ts';
import { dotCommitSpace } from './commit-space.ts';

/**
 * `dm dot show [-H] [<dot>]`. RPCs in the original's order: Lookup+Get (master), Branches, then
 * per branch (sorted, master included): Lookup+Get (non-master), Containers (current branch
 * only), GetReplicationLatencyForBranch (admin remotes only; a failure is shown, not fatal).
 */
export interface ReplicaState {
  server: string;
  master: boolean;
  status: string;
  missingCommits: string[];
}

export interface BranchInfo {
  name: string;
  id: string;
  current: boolean;
  containers: string[];
  /** null when not fetched (non-admin remote). */
  replication: ReplicaState[] | null;
  replicationError?: string;
}

export interface DotShowResult {
  namespace: string;
  name: string;
  masterBranchId: string;
  selected: boolean;
  commitCount: number;
  sizeBytes: number;
  dirtyBytes: number;
  /** Sum of the bytes each commit of the dot alone holds; null when the server cannot say. */
  commitsExclusiveBytes?: number | null;
  currentBranch: string;
  branches: BranchInfo[];
  upstreams: { remote: string; namespace: string; name: string }[];
}

async function branchVolume(ctx: CommandContext, dot: DotName, branch: string): Promise<DotmeshVolume> {
  const id = await ctx.call('Lookup', { Namespace: dot.namespace, Name: dot.name, Branch: deMasterify(branch) });
  return ctx.call('Get', id);
}

function replicaStates(volume: DotmeshVolume, latency: Record<string, string[]>): ReplicaState[] {
  return Object.keys(latency)
    .sort()
    .map((server) => ({
      server,
      master: volume.Master === server,
      status: volume.ServerStatuses?.[server] ?? 'unknown',
      missingCommits: latency[server] ?? [],
    }));
}

export async function dotShow(ctx: CommandContext, arg: string | undefined): Promise<DotShowResult> {
  const qualified = arg !== undefined ? formatDotName(await parseDotArg(ctx, arg)) : await ctx.strictCurrentDot();
  const dot = parseDotName(qualified);
  const master = await branchVolume(ctx, dot, MASTER_BRANCH);
  const active = await ctx.currentDot();
  const selected = active !== '' && formatDotName(parseDotName(active)) === formatDotName(dot);
  const currentBranch = await ctx.currentBranch(qualified);
  const { remote } = await ctx.currentRemote();
  const privileged = remote.User === 'admin';
  const branches: BranchInfo[] = [];
  for (const branch of await allBranches(ctx, qualified)) {
    const volume = branch === MASTER_BRANCH ? master : await branchVolume(ctx, dot, branch);
    const current = branch === currentBranch;
    const containers = current
      ? (await ctx.call('Containers', { Branch: deMasterify(branch), Name: dot.name, Namespace: dot.namespace })).map(
          (c) => c.Name,
        )
      : [];
    const info: BranchInfo = { name: branch, id: volume.Id, current, containers, replication: null };
    if (privileged) {
      try {
        const latency = await ctx.call('GetReplicationLatencyForBranch', {
          Namespace: dot.namespace,
          Name: dot.name,
          Branch: deMasterify(branch),
        });
        info.replication = replicaStates(volume, latency);
      } catch (e) {
        info.replicationError = (e as Error).message;
      }
    }
    branches.push(info);
  }
  const config = await ctx.loadConfig();
  const upstreams = Object.keys(config.Remotes)
    .sort()
    .flatMap((r) => {
      const up = config.Remotes[r]?.DefaultRemoteVolumes?.[dot.namespace]?.[dot.name];
      return up ? [{ remote: r, namespace: up.Namespace, name: up.Name }] : [];
    });
  const branchNames = branches.map((b) => b.name);
  const commitsExclusiveBytes = await dotCommitSpace(ctx, dot, branchNames);
  return {
    namespace: dot.namespace,
    name: dot.name,
    masterBranchId: master.Id,
    selected,
    commitCount: master.CommitCount,
    sizeBytes: master.SizeBytes,
    dirtyBytes: master.DirtyBytes,
    commitsExclusiveBytes,
    currentBranch,
    branches,
    upstreams,
  };
}

export function renderDotShow(d: DotShowResult): string[] {
  const out = [`Dot ${d.namespace}/${d.name}:`, `Master branch ID: ${d.masterBranchId}`];
  if (d.selected) out.push('Dot is currently selected.');
  out.push(`Commits: ${d.commitCount}`);
  out.push(
    d.dirtyBytes === 0
      ? `Dot size: ${prettySize(d.sizeBytes)} (all clean)`
      : `Dot size: ${prettySize(d.sizeBytes)} (${prettySize(d.dirtyBytes)} dirty)`,
  );
  if (typeof d.commitsExclusiveBytes === 'number') out.push(`Space held by commits: ${prettySize(d.commitsExclusiveBytes)}`);
  out.push('Branches:');
  for (const b of d.branches) {
    const containers = b.containers.length > 0 ? ` (containers: ${b.containers.join(',')})` : '';
    out.push(`${b.current ? '* ' : '  '}${b.name} (${b.id})${containers}`);
    if (b.replication === null && b.replicationError === undefined) continue;
    out.push('   Replication Status:');
    if (b.replicationError !== undefined) out.push(`unable to fetch replication status (${b.replicationError}), proceeding...`);
    for (const r of b.replication ?? []) {
      const state = r.master ? ' [MASTER]' : '         ';
      const tail = r.missingCommits.length > 0 ? `is missing ${goStringSlice(r.missingCommits)}` : 'is up to date';
      out.push(`    server ${r.server}${state} (status: ${r.status}) ${tail}`);
    }
  }
  for (const u of d.upstreams) out.push(`Tracks dot ${u.namespace}/${u.name} on remote ${u.remote}`);
  return out;
}

export function renderDotShowScripting(d: DotShowResult): string[] {
  const out = [`namespace\t${d.namespace}`, `name\t${d.name}`, `masterBranchId\t${d.masterBranchId}`];
  if (d.selected) out.push('selected');
  out.push(
    `commitCount\t${d.commitCount}`,
    `size\t${d.sizeBytes}`,
    `dirty\t${d.dirtyBytes}`,
    ...(typeof d.commitsExclusiveBytes !== 'number' ? [] : [`commitsExclusiveBytes\t${d.commitsExclusiveBytes}`]),
    `currentBranch\t${d.currentBranch}`,
  );
  for (const b of d.branches) {
    out.push(`branch\t${b.id}\t${b.name}`);
    for (const c of b.containers) out.push(`container\t${b.name}\t${c}`);
    if (b.replicationError !== undefined) out.push(`unable to fetch replication status (${b.replicationError}), proceeding...`);
    for (const r of b.replication ?? []) {
      out.push(['latency', r.server, r.master ? 'master' : 'replica', r.status, r.missingCommits.join('\t')].join('\t'));
    }
  }
  for (const u of d.upstreams) out.push(`defaultUpstreamDot\t${u.remote}\t${u.namespace}/${u.name}`);
  return out;
}
