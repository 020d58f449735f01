import { DotmeshError, MASTER_BRANCH, retiredBranchName } from '@dotmesh/core';
import type { TxnOp } from '@dotmesh/store';
import { refuseIfPublished } from '../cluster/publications.ts';
import { KEYS } from '../cluster/store-keys.ts';
import { type Caller, requireOwner } from './caller.ts';
import { dropCommits, headOf, planCollection } from './collect.ts';
import type { DotContext } from './context.ts';
import type { BranchLabel, DotInfo } from './labels.ts';
import { absent, dropAdvertisedKeys, dropOwnKeys, putBranchState, putClone, putTombstone } from './mutation/store-writes.ts';
import type { MutationTx } from './mutation/tx.ts';
import { resolveBranch } from './resolve.ts';
import { refuseIfInUse } from './rollback.ts';

export interface DeleteBranchRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly branch: unknown;
}

export interface DeleteBranchResult {
  /** The branch's volume is gone (nothing needed its commits). */
  readonly deleted: boolean;
  /** The branch is retired: its name is free, its volume stays for the commits still needed. */
  readonly retired: boolean;
  /** Own commits kept (0 when deleted). */
  readonly keptCommits: number;
  /** Branches the dot has left besides master, retired ones included. */
  readonly branches: number;
}

export type DeleteBranchDeps = Pick<
  DotContext,
  | 'index'
  | 'view'
  | 'mutations'
  | 'masterNodes'
  | 'storage'
  | 'containers'
  | 'publications'
  | 'inUse'
  | 'logger'
  | 'now'
  | 'newId'
>;

/**
 * Deletes one branch of a dot (never the master branch: that is the dot), on its master node;
 * owner or admin. Refused (IN_USE) while containers, Kubernetes publications, processes or
 * mounts use it. Other branches and the commits they build on are never touched:
 *
 * - when no other branch's history passes through its commits and none is retained, the
 *   branch goes: stored (a tombstone, so every node destroys its copy and nothing brings it
 *   back; the clone record and the master key removed) ─(delete-branch.after-store)→ volume
 *   destroyed. A crash after the store write leaves a tombstoned volume, destroyed at start;
 * - otherwise it is **retired**: renamed `__deleted-<fsId>` (its name is free again, listings
 *   leave it out) with its live data reset to its newest kept commit, and its commits nothing
 *   needs deleted. Label renamed with a rollback intent (undone if the store write fails)
 *   ─(delete-branch.after-label)→ stored: the clone record under the new name
 *   ─(delete-branch.after-store)→ live data swapped ─(delete-branch.after-swap)→ commits
 *   collected. Recovery redoes the swap from the intent. A retired branch goes once nothing
 *   needs its commits (a later DeleteBranch or DeleteCommit in the dot plans it).
 *
 * Other retired branches of the dot that nothing needs any more go in the same mutation.
 */
export async function deleteBranch(ctx: DeleteBranchDeps, caller: Caller, req: DeleteBranchRequest): Promise<DeleteBranchResult> {
  const { dot, fsId, branch } = resolveBranch(ctx, caller, req.namespace, req.name, req.branch);
  const dotName = `${dot.info.namespace}/${dot.info.name}`;
  if (branch === MASTER_BRANCH) {
    throw new DotmeshError('INVALID_ARGUMENT', `The master branch of ${dotName} is the dot itself: it cannot be deleted alone`, {
      hint: `delete the dot with 'dm dot delete ${dotName}'`,
    });
  }
  requireOwner(caller, dot.info, `delete branch ${branch}`);
  const what = `delete branch ${branch} of ${dotName}`;
  const result = await ctx.mutations.run(
    { op: 'delete-branch', what, dotId: dot.id, dotLock: 'exclusive', queues: [fsId], mastered: [fsId], evenWhenFull: true },
    async (tx) => {
      const state = ctx.index.branches.get(fsId);
      if (!state || ctx.index.dots.get(dot.id)?.branches.get(branch) !== fsId) {
        throw new DotmeshError('BRANCH_NOT_FOUND', `Branch does not exist: ${branch}`, { data: { dotId: dot.id, branch } });
      }
      const containers = await ctx.containers.containersFor(fsId);
      if (containers.length > 0) {
        throw new DotmeshError('IN_USE', `Cannot ${what}: containers are using it: ${containers.map((c) => c.Name).join(', ')}`, {
          hint: 'stop the containers first',
          data: { containers: containers.map((c) => c.Name) },
        });
      }
      await refuseIfInUse(ctx, fsId, dotName);
      const uses = await ctx.publications.read(fsId);
      refuseIfPublished({ of: () => uses.record }, fsId, `Cannot ${what}`);
      tx.storeCompare(uses.fence);

      const { intent: _none, ...current } = state.label;
      const retiredLabel: BranchLabel = {
        ...current,
        branch: retiredBranchName(fsId),
        retired: state.label.retired ?? ctx.now().toISOString(),
      };
      const plan = planCollection(ctx.index, dot.id, { labels: new Map([[fsId, retiredLabel]]) });
      const destroy = plan.emptyRetired.filter((id) => id === fsId || ctx.masterNodes.isMine(id));
      const nodeId = ctx.mutations.nodeId;
      for (const id of destroy) {
        if (id !== fsId) tx.storeCompare(masterFence(ctx, id));
        const b = ctx.index.requireBranch(id).label.branch;
        destroyOps(tx, {
          fsId: id,
          dotId: dot.id,
          branch: id === fsId ? branch : b,
          info: dot.info,
          nodeId,
          username: caller.name,
          at: ctx.now(),
        });
      }
      const gone = destroy.includes(fsId);
      const kept = state.commits.filter((c) => !(plan.commits.get(fsId) ?? []).includes(c.id));
      if (!gone) {
        if (state.label.retired !== undefined) return { retired: true, kept: kept.length }; // already retired, still needed
        const newest = kept.at(-1)!;
        const label: BranchLabel = {
          ...retiredLabel,
          intent: { op: 'rollback', to: { fsId, commitId: newest.id }, opId: tx.newId() },
        };
        await tx.writeLabel(label, state.label);
        tx.failpoint('delete-branch.after-label');
        const head = headOf(retiredLabel, state.commits);
        tx.storeCompare(absent(KEYS.clone(dot.id, retiredLabel.branch)));
        tx.storeOps(
          { type: 'delete', key: KEYS.clone(dot.id, branch) },
          putClone(retiredLabel),
          putBranchState(nodeId, fsId, { head, commitCount: ctx.index.listedHistoryFrom(head).length, active: true }),
        );
        tx.viewSetLabel(retiredLabel);
        tx.finish('retire the branch', async () => {
          tx.failpoint('delete-branch.after-store');
          await tx.swapLive(fsId, { fsId, commitId: newest.id });
          tx.failpoint('delete-branch.after-swap');
          await tx.rewriteLabel(retiredLabel);
        });
      } else {
        tx.finish('delete-branch.after-store', async () => tx.failpoint('delete-branch.after-store'));
      }
      tx.finish('destroy volumes and commits nothing needs', async () => {
        for (const id of destroy) await tx.destroyVolume(id);
        for (const [id, drop] of plan.commits) if (!destroy.includes(id)) await dropCommits(ctx, tx, id, drop);
      });
      return { retired: !gone, kept: gone ? 0 : kept.length };
    },
  );
  const branches = [...ctx.view.branchesOf(dot.id).keys()].filter((b) => b !== MASTER_BRANCH).length;
  ctx.logger.info({ fsId, dotId: dot.id, branch, ...result }, result.retired ? 'retired a branch' : 'deleted a branch');
  return { deleted: !result.retired, retired: result.retired, keptCommits: result.kept, branches };
}

/** The store side of destroying one branch volume; its volume goes in a finishing step. */
export function destroyOps(
  tx: MutationTx,
  o: {
    readonly fsId: string;
    readonly dotId: string;
    readonly branch: string;
    readonly info: DotInfo;
    readonly nodeId: string;
    readonly username: string;
    readonly at: Date;
  },
): void {
  const ops: TxnOp[] = [
    putTombstone({
      fsId: o.fsId,
      dotId: o.dotId,
      nodeId: o.nodeId,
      username: o.username,
      info: o.info,
      branch: o.branch,
      at: o.at,
    }),
    { type: 'delete', key: KEYS.clone(o.dotId, o.branch) },
    { type: 'delete', key: KEYS.master(o.fsId) },
    { type: 'delete', key: KEYS.publications(o.fsId) },
  ];
  tx.storeOps(...ops);
  // What its master advertised (sizes, containers) goes with it, not with that node's lease.
  tx.storeFollowUps(...dropOwnKeys(o.nodeId, o.fsId), ...dropAdvertisedKeys(o.fsId));
  tx.viewRemoveBranch(o.fsId);
}

/** Fails the mutation's transaction if another branch's master key changed meanwhile. */
export function masterFence(ctx: Pick<DotContext, 'masterNodes'>, fsId: string) {
  return {
    key: KEYS.master(fsId),
    target: 'modRevision' as const,
    op: '==' as const,
    value: ctx.masterNodes.get(fsId)?.revision ?? 0,
  };
}
