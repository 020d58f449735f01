import type { CommitOrigin } from '@dotmesh/core';
import type { DotContext } from '../dots/context.ts';
import type { ClusterView } from './view.ts';

/**
 * GetReplicationLatencyForBranch: for every live node (and every node advertising a copy), the
 * commits of the branch's history as its master node advertises it that the node does not
 * hold; the master itself misses none. Empty lists once replication caught up.
 */
export function replicationLatency(view: ClusterView, masterNode: string, fsId: string): Record<string, string[]> {
  const head = view.copiesOf(fsId).get(masterNode)?.head ?? null;
  const history = view.historyOn(masterNode, head);
  const out: Record<string, string[]> = {};
  const nodes = new Set([masterNode, ...view.copiesOf(fsId).keys(), ...view.nodes().map((n) => n.id)]);
  for (const node of nodes) {
    if (node === '') continue;
    out[node] = node === masterNode ? [] : missingOn(view, node, history).map((ref) => ref.commitId);
  }
  return out;
}

/** One branch this node masters and one other live node: the commits of its history the node lacks. */
export interface PendingReplication {
  readonly fsId: string;
  readonly node: string;
  readonly commits: number;
}

/**
 * The replication lag of this node's branches (dm_replication_pending_commits): for every branch
 * it masters and every other live node with a node endpoint, how many commits of the branch's
 * history (as this node holds it) that node does not advertise.
 */
export function pendingReplication(ctx: Pick<DotContext, 'index' | 'view' | 'masterNodes' | 'nodeId'>): PendingReplication[] {
  const out: PendingReplication[] = [];
  const nodes = ctx.view.nodes().filter((n) => n.id !== ctx.nodeId && n.clusterPort !== 0);
  if (nodes.length === 0) return out;
  for (const fsId of ctx.masterNodes.mine()) {
    if (!ctx.index.branches.has(fsId)) continue;
    const history = ctx.index.history(fsId);
    for (const node of nodes) out.push({ fsId, node: node.id, commits: missingOn(ctx.view, node.id, history).length });
  }
  return out;
}

function missingOn(view: ClusterView, node: string, history: readonly CommitOrigin[]): CommitOrigin[] {
  return history.filter((ref) => !view.holds(node, ref));
}
