import { DotmeshError, validateFsId } from '@dotmesh/core';
import type { Store } from '@dotmesh/store';
import { activateBranch, type HandoffDeps, handOff } from '../cluster/handoff.ts';
import { clearRestart, pendingRestart } from '../cluster/planned-restart.ts';
import { canAccess } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import { putMaster } from '../dots/mutation/store-writes.ts';
import type { HandlerTable } from './handlers.ts';

const NODE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Mastership: ForceBranchMasterById (the original's escape hatch: write the master key, no
 * questions asked; "" = the node serving the call), MoveBranch (ours: a handoff, run on the
 * branch's master, see cluster/handoff.ts) and EndPlannedRestart (ours: a node that stopped
 * cleanly and will not come back — its machine is gone — has its planned-restart grace ended,
 * so that failover moves its branches one lease TTL after it went instead of at the grace's
 * end; cluster/planned-restart.ts). All admin only.
 */
export function clusterHandlers(deps: {
  readonly ctx: DotContext;
  /** The cluster store (the planned-restart keys). */
  readonly store: Store;
  /** Absent on a single node (no other node to move a branch to). */
  readonly handoff?: HandoffDeps;
}): Pick<HandlerTable, 'ForceBranchMasterById' | 'MoveBranch' | 'EndPlannedRestart'> {
  const { ctx } = deps;
  /** A branch the caller may see, by id, from the cluster's facts (any node knows them). */
  const visibleBranch = (caller: Parameters<HandlerTable['MoveBranch']>[0], raw: unknown) => {
    const fsId = validateFsId(raw);
    const branch = ctx.view.branch(fsId);
    const dot = branch ? ctx.view.dot(branch.dotId) : undefined;
    if (!branch || !dot || !canAccess(caller, dot)) {
      throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${fsId}'`, { hint: 'look the id up with Lookup' });
    }
    return { fsId, dotId: dot.id };
  };
  /** A node named by the caller: "" is this one; others must be live nodes of the cluster. */
  const liveNode = (node: string) => {
    const id = node === '' ? ctx.nodeId : node;
    if (id !== ctx.nodeId && !ctx.view.node(id)) {
      const known = ctx.view.nodes().map((n) => n.id);
      throw new DotmeshError('INVALID_ARGUMENT', `${JSON.stringify(id.slice(0, 64))} is not a live node of this cluster`, {
        hint: `the live nodes: ${known.join(', ') || ctx.nodeId}`,
        data: { nodes: known },
      });
    }
    return id;
  };
  return {
    ForceBranchMasterById: async (caller, p) => {
      const { fsId, dotId } = visibleBranch(caller, p.FilesystemId);
      const node = liveNode(p.Master);
      await ctx.mutations.run(
        { op: 'mastership', what: `force node ${node} to master ${fsId}`, dotId, dotLock: 'exclusive', evenWhenFull: true },
        async (tx) => {
          tx.storeOps(putMaster(fsId, node));
        },
      );
      ctx.logger.warn({ fsId, node, by: caller.name }, 'mastership forced');
      if (node === ctx.nodeId) await activateBranch(ctx, fsId);
      return true;
    },
    MoveBranch: async (caller, p) => {
      const { fsId } = visibleBranch(caller, p.BranchId);
      const node = liveNode(p.Node);
      if (!deps.handoff) {
        if (node === ctx.nodeId) return { Master: node, Revision: ctx.masterNodes.requireMine(fsId, 'move it').revision };
        throw new DotmeshError('UNSUPPORTED', 'this server is a single node: there is no other node to move a branch to');
      }
      const revision = await handOff(deps.handoff, fsId, node);
      return { Master: node, Revision: revision };
    },
    EndPlannedRestart: async (caller, p) => {
      if (!NODE_ID_RE.test(p.Node)) {
        throw new DotmeshError('INVALID_ARGUMENT', `${JSON.stringify(p.Node.slice(0, 80))} is not a node id`, {
          hint: 'give the id of a node that is away (dm cluster nodes, or the NodeId of PoolInfo)',
        });
      }
      if (p.Node === ctx.nodeId || ctx.view.node(p.Node)) {
        throw new DotmeshError('INVALID_ARGUMENT', `node ${p.Node} is live: it has no planned restart to end`, {
          hint: 'a planned restart is ended only for a node that is away for good',
        });
      }
      const pending = await pendingRestart(deps.store, p.Node);
      if (!pending) return { Ended: false };
      await clearRestart(deps.store, p.Node);
      ctx.logger.warn(
        { node: p.Node, since: pending.since, by: caller.name },
        'planned restart ended: failover may now move the away node’s branches',
      );
      return { Ended: true };
    },
  };
}
