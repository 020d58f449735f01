import type { CommitOrigin } from '@dotmesh/core';
import { dropCommits, headOf, planCollection } from '../dots/collect.ts';
import type { DotContext } from '../dots/context.ts';
import { finishDelete } from '../dots/create-delete.ts';
import type { BranchLabel } from '../dots/labels.ts';
import { dropOwnKeys, putBranchState } from '../dots/mutation/store-writes.ts';
import type { ClusterView } from './view.ts';

type TombstoneContext = Pick<DotContext, 'index' | 'view' | 'masterNodes' | 'mutations' | 'logger'>;

/**
 * Deletes made on another node reach this one as tombstones (`filesystems/deleted/<fsId>`):
 * this node then destroys its copy of that dot (or branch) through the mutation path, as a
 * delete whose store side is only its own keys. A node that was down during the delete does
 * the same at start (reconcile-store.ts).
 *
 * Commits deleted on a branch's master (`filesystems/deleted-commits/<fsId>/<commitId>`) are
 * deleted from this node's replica of that branch the same way (hideDeletedCommit), at once and
 * for the tombstones already there when it starts following, so that replication never lists a
 * deleted commit again (nor keeps it on a DIVERGED branch).
 */
export function followTombstones(ctx: TombstoneContext, view: ClusterView): () => void {
  const unsubscribe = view.onChange((change) => {
    if (change.kind === 'deleted') {
      void destroyDeletedCopy(ctx, change.fsId).catch((err: unknown) =>
        ctx.logger.error({ err, fsId: change.fsId }, 'could not destroy this node’s copy of a deleted dot'),
      );
    } else if (change.kind === 'deleted-commit') {
      followDeletedCommit(ctx, { fsId: change.fsId, commitId: change.commitId });
    }
  });
  for (const [fsId, branch] of ctx.index.branches) {
    for (const c of branch.commits) {
      const ref = { fsId, commitId: c.id };
      if (ctx.view.isCommitDeleted(ref) && !isHiddenDeleted(branch.label, c.id)) followDeletedCommit(ctx, ref);
    }
  }
  return unsubscribe;
}

function followDeletedCommit(ctx: TombstoneContext, ref: CommitOrigin): void {
  void hideDeletedCommit(ctx, ref).catch((err: unknown) =>
    ctx.logger.warn({ err, ...ref }, 'could not delete a commit deleted on its master from this node’s replica'),
  );
}

/** Destroys this node's copy of a deleted dot (its id) or branch; nothing when it holds none. */
export async function destroyDeletedCopy(ctx: Pick<DotContext, 'index' | 'mutations' | 'logger'>, fsId: string): Promise<void> {
  const dot = ctx.index.dots.get(fsId);
  const branch = dot ? undefined : ctx.index.branches.get(fsId);
  const dotId = dot?.id ?? branch?.label.dotId;
  if (dotId === undefined) return;
  await ctx.mutations.run(
    { op: 'delete', what: `remove this node's copy of deleted ${fsId}`, dotId, dotLock: 'exclusive', evenWhenFull: true },
    async (tx) => {
      const nodeId = ctx.mutations.nodeId;
      if (dot) {
        if (ctx.index.dots.get(dotId) !== dot) return;
        const master = ctx.index.branches.get(dotId);
        const fsIds = [...dot.branches.values()];
        if (master) await tx.writeIntent(master.label, { op: 'delete', opId: tx.newId() }, master.label);
        tx.storeFollowUps(...fsIds.flatMap((id) => dropOwnKeys(nodeId, id)));
        tx.viewRemoveDot(dotId);
        tx.finish('destroy the copy', () => finishDelete(tx, dotId, fsIds));
      } else if (branch && ctx.index.branches.get(fsId) === branch) {
        tx.storeFollowUps(...dropOwnKeys(nodeId, fsId));
        tx.viewRemoveBranch(fsId);
        tx.finish('destroy the branch copy', () => tx.destroyVolume(fsId));
      }
      ctx.logger.info({ fsId, dotId }, 'removing this node’s copy of a dot deleted elsewhere');
    },
  );
}

/**
 * A commit deleted with DeleteCommit on its branch's master, on this node's replica of that
 * branch: hidden and marked deleted as the master's label has it (the replica's head moves back
 * with the master's), its state key says so, and it leaves the pool unless a history still
 * passes through it. A no-op where this node masters the branch, does not hold the commit, or
 * already did it. Runs under the dot's lock, so a commit arriving meanwhile is seen.
 */
export async function hideDeletedCommit(ctx: TombstoneContext, ref: CommitOrigin): Promise<void> {
  const dotId = ctx.index.branches.get(ref.fsId)?.label.dotId ?? ctx.view.branch(ref.fsId)?.dotId;
  if (dotId === undefined || !ctx.index.dots.has(dotId) || ctx.masterNodes.isMine(ref.fsId)) return;
  const { fsId, commitId } = ref;
  const done = await ctx.mutations.run(
    {
      op: 'delete-commit',
      what: `delete commit ${commitId} from this node's replica of ${fsId}`,
      dotId,
      dotLock: 'exclusive',
      queues: [fsId],
      evenWhenFull: true,
    },
    async (tx) => {
      const state = ctx.index.branches.get(fsId);
      if (!state || ctx.masterNodes.isMine(fsId) || !state.commits.some((c) => c.id === commitId)) return false;
      if (isHiddenDeleted(state.label, commitId)) return false;
      const label: BranchLabel = {
        ...state.label,
        hiddenCommits: [...new Set([...state.label.hiddenCommits, commitId])],
        deletedCommits: [...new Set([...(state.label.deletedCommits ?? []), commitId])],
      };
      await tx.writeLabel(label, state.label);
      const head = headOf(label, state.commits);
      const listed = ctx.index
        .historyFrom(head)
        .filter((h) => !(h.fsId === fsId && h.commitId === commitId) && !ctx.index.isDeletedCommit(h));
      tx.storeOps(putBranchState(ctx.mutations.nodeId, fsId, { head, commitCount: listed.length, active: false }));
      tx.viewSetLabel(label);
      const unneeded = (planCollection(ctx.index, dotId, { labels: new Map([[fsId, label]]) }).commits.get(fsId) ?? []).includes(
        commitId,
      );
      tx.finish('drop the deleted commit', async () => {
        if (unneeded) await dropCommits(ctx, tx, fsId, [commitId]);
      });
      return true;
    },
  );
  if (done) ctx.logger.info({ fsId, commitId }, 'deleted a commit from this node’s replica (deleted on its master)');
}

function isHiddenDeleted(label: BranchLabel, commitId: string): boolean {
  return label.hiddenCommits.includes(commitId) && (label.deletedCommits ?? []).includes(commitId);
}
