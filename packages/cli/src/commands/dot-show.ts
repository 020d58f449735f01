import { deMasterify, formatDotName, MASTER_BRANCH, parseDotName } from '@dotmesh/core';
import type { CallParamsOf, DotmeshVolume, ResultOf } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';
import { goStringSlice, prettySize } from '../format.ts';
import { parseDotArg } from '../namespace.ts';
import { allBranches } from './branch.ts';
import { branchVolume, warnNoSuchCurrentBranch } from './branch-volume.ts';
import { dotCommitSpace } from './commit-space.ts';

/**
 * `dm dot show [-H] [<dot>]`. RPCs in the original's order: Lookup+Get (master), Branches, then
 * per branch (sorted, master included): Lookup+Get (non-master), Containers (current branch
 * only), GetReplicationLatencyForBranch (admin remotes only; a failure is shown, not fatal),
 * GetDurability and GetPinned (ours; a server without them, or a failure, shows none).
 * A branch whose master node is gone (ServerStates says `gone`) gets a line saying what it
 * waits for (failover, or its node when pinned).
 * The dot's figures (commits, size, dirty bytes) are those of its CURRENT branch (the config's),
 * which the output names; every branch's figures are in `--json`.
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
  commitCount: number;
  sizeBytes: number;
  dirtyBytes: number;
  containers: string[];
  /** null when not fetched (non-admin remote). */
  replication: ReplicaState[] | null;
  /** `sync` or `async` and where it comes from; null when the server has no such setting. */
  durability?: { durability: string; source: string } | null;
  /** Pinned to its master node (no automatic failover), and by what; null when the server has no such setting. */
  pinned?: { pinned: boolean; source: string } | null;
  /** Its master node when that node is gone (its lease expired), and what the branch waits for. */
  masterGone?: { node: string; status: string } | null;
  replicationError?: string;
}

export interface DotShowResult {
  namespace: string;
  name: string;
  masterBranchId: string;
  selected: boolean;
  /** Figures of `currentBranch`; null when the dot has no such branch (a stale config). */
  commitCount: number | null;
  sizeBytes: number | null;
  dirtyBytes: number | null;
  /** Sum of the bytes each commit of the dot alone holds; null when the server cannot say. */
  commitsExclusiveBytes?: number | null;
  currentBranch: string;
  branches: BranchInfo[];
  upstreams: { remote: string; namespace: string; name: string }[];
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

/**
 * A branch's setting from one of this server's additions (GetDurability, GetPinned), or null
 * from a server that does not have it (the original's); anything else fails the calls around it
 * too.
 */
async function branchSetting<M extends 'GetDurability' | 'GetPinned', T>(
  ctx: CommandContext,
  method: M,
  dot: { namespace: string; name: string },
  branch: string,
  pick: (result: ResultOf<M>) => T,
): Promise<T | null> {
  try {
    // Both methods take the branch params.
    const params = { Namespace: dot.namespace, Name: dot.name, Branch: deMasterify(branch) } as CallParamsOf<M>;
    return pick(await ctx.call(method, params));
  } catch {
    return null;
  }
}

const SOURCE_WORDS: Record<string, string> = {
  branch: 'set on the branch',
  dot: 'set on the dot',
  cluster: "the cluster's default",
};

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
    const durability = await branchSetting(ctx, 'GetDurability', dot, branch, (d) => ({
      durability: d.Durability,
      source: d.Source,
    }));
    const info: BranchInfo = {
      name: branch,
      id: volume.Id,
      current,
      commitCount: volume.CommitCount,
      sizeBytes: volume.SizeBytes,
      dirtyBytes: volume.DirtyBytes,
      containers,
      replication: null,
      masterGone:
        volume.ServerStates?.[volume.Master] === 'gone'
          ? { node: volume.Master, status: volume.ServerStatuses?.[volume.Master] ?? 'gone' }
          : null,
      durability,
      // Asked only of a server that has GetDurability: the original's is spared a second refusal.
      pinned:
        durability === null
          ? null
          : await branchSetting(ctx, 'GetPinned', dot, branch, (p) => ({ pinned: p.Pinned, source: p.Source })),
    };
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
  const figures = branches.find((b) => b.current);
  if (!figures) warnNoSuchCurrentBranch(ctx, dot, currentBranch);
  return {
    namespace: dot.namespace,
    name: dot.name,
    masterBranchId: master.Id,
    selected,
    commitCount: figures?.commitCount ?? null,
    sizeBytes: figures?.sizeBytes ?? null,
    dirtyBytes: figures?.dirtyBytes ?? null,
    commitsExclusiveBytes,
    currentBranch,
    branches,
    upstreams,
  };
}

export function renderDotShow(d: DotShowResult): string[] {
  const out = [`Dot ${d.namespace}/${d.name}:`, `Master branch ID: ${d.masterBranchId}`];
  if (d.selected) out.push('Dot is currently selected.');
  // On master the original's lines, which were about master; else the figures' branch is named.
  if (d.currentBranch !== MASTER_BRANCH) out.push(`Current branch: ${d.currentBranch}`);
  out.push(`Commits: ${d.commitCount ?? '?'}`);
  const size = d.sizeBytes === null ? '?' : prettySize(d.sizeBytes);
  if (d.dirtyBytes === null) out.push(`Dot size: ${size}`);
  else out.push(d.dirtyBytes === 0 ? `Dot size: ${size} (all clean)` : `Dot size: ${size} (${prettySize(d.dirtyBytes)} dirty)`);
  if (typeof d.commitsExclusiveBytes === 'number') out.push(`Space held by commits: ${prettySize(d.commitsExclusiveBytes)}`);
  out.push('Branches:');
  for (const b of d.branches) {
    const containers = b.containers.length > 0 ? ` (containers: ${b.containers.join(',')})` : '';
    out.push(`${b.current ? '* ' : '  '}${b.name} (${b.id})${containers}`);
    if (b.durability)
      out.push(`   Durability: ${b.durability.durability} (${SOURCE_WORDS[b.durability.source] ?? b.durability.source})`);
    if (b.pinned?.pinned)
      out.push(`   Pinned to its node: no automatic failover (${SOURCE_WORDS[b.pinned.source] ?? b.pinned.source})`);
    if (b.masterGone) out.push(`   Master node ${b.masterGone.node} is ${b.masterGone.status}`);
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
    `commitCount\t${d.commitCount ?? '?'}`,
    `size\t${d.sizeBytes ?? '?'}`,
    `dirty\t${d.dirtyBytes ?? '?'}`,
    ...(typeof d.commitsExclusiveBytes !== 'number' ? [] : [`commitsExclusiveBytes\t${d.commitsExclusiveBytes}`]),
    `currentBranch\t${d.currentBranch}`,
  );
  for (const b of d.branches) {
    out.push(`branch\t${b.id}\t${b.name}`);
    for (const c of b.containers) out.push(`container\t${b.name}\t${c}`);
    if (b.durability) out.push(`durability\t${b.name}\t${b.durability.durability}\t${b.durability.source}`);
    if (b.pinned?.pinned) out.push(`pinned\t${b.name}\t${b.pinned.source}`);
    if (b.masterGone) out.push(`masterGone\t${b.name}\t${b.masterGone.node}`);
    if (b.replicationError !== undefined) out.push(`unable to fetch replication status (${b.replicationError}), proceeding...`);
    for (const r of b.replication ?? []) {
      out.push(['latency', r.server, r.master ? 'master' : 'replica', r.status, r.missingCommits.join('\t')].join('\t'));
    }
  }
  for (const u of d.upstreams) out.push(`defaultUpstreamDot\t${u.remote}\t${u.namespace}/${u.name}`);
  return out;
}
