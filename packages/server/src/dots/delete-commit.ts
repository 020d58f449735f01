import { DotmeshError, INITIAL_COMMIT_TYPE, validateName } from '@dotmesh/core';
import { type Caller, requireOwner } from './caller.ts';
import { dropCommits, headOf, planCollection } from './collect.ts';
import type { DotContext } from './context.ts';
import { destroyOps, masterFence } from './delete-branch.ts';
import type { BranchLabel } from './labels.ts';
import { putBranchState, putDeletedCommit } from './mutation/store-writes.ts';
import { requireVisibleFs } from './views.ts';

export interface DeleteCommitRequest {
  readonly fsId: unknown;
  readonly commitId: unknown;
}

export interface DeleteCommitResult {
  /** The commit is gone from the pool. */
  readonly deleted: boolean;
  /** It stays, hidden, because a history still passes through it. */
  readonly hidden: boolean;
}

export type DeleteCommitDeps = Pick<DotContext, 'index' | 'view' | 'mutations' | 'masterNodes' | 'logger' | 'now' | 'newId'>;

/**
 * Deletes commit `commitId` of branch volume `fsId` (one of its own commits, not one it
 * inherits), on the branch's master node; owner or admin. The commit is listed nowhere any more
 * (a tombstone `filesystems/deleted-commits/<fsId>/<commitId>` says so on every node) and no
 * longer retained; when it was the newest of the branch's history, the history ends at the one
 * before (the live data stays). It leaves the pool at once unless a history still passes
 * through it (a later commit of the branch, a branch made from it): then it stays, hidden,
 * until nothing needs it. A dot's initial commit cannot be deleted.
 *
 * Steps: label with the commit hidden and deleted (undone if the store write fails)
 * ─(delete-commit.after-label)→ stored: the tombstone and the branch's new head
 * ─(delete-commit.after-store)→ commits (and retired volumes) nothing needs deleted. A crash
 * after the label write leaves the commit hidden; start-up collects what nothing needs.
 * Deleting a deleted commit again succeeds.
 */
export async function deleteCommit(ctx: DeleteCommitDeps, caller: Caller, req: DeleteCommitRequest): Promise<DeleteCommitResult> {
  const fsId = requireVisibleFs(ctx, caller, req.fsId);
  const commitId = validateName('commit', req.commitId);
  const { dot, label: startLabel } = branchAndDot(ctx, fsId);
  requireOwner(caller, dot.info, `delete commit ${commitId}`);
  const what = `delete commit ${commitId} of ${dot.info.namespace}/${dot.info.name}`;
  const result = await ctx.mutations.run(
    { op: 'delete-commit', what, dotId: dot.id, dotLock: 'exclusive', queues: [fsId], mastered: [fsId], evenWhenFull: true },
    async (tx): Promise<DeleteCommitResult> => {
      const state = ctx.index.requireBranch(fsId);
      const commit = state.commits.find((c) => c.id === commitId);
      if (!commit) {
        if (ctx.view.isCommitDeleted({ fsId, commitId })) return { deleted: true, hidden: false };
        throw new DotmeshError('COMMIT_NOT_FOUND', `No commit ${commitId} in filesystem ${fsId}`, {
          hint: 'list the commits of its branch with CommitsById',
        });
      }
      if (state.label.deletedCommits?.includes(commitId)) return { deleted: false, hidden: true };
      if (fsId === dot.id && commit.meta.metadata.type === INITIAL_COMMIT_TYPE) {
        throw new DotmeshError(
          'INVALID_ARGUMENT',
          `The initial commit of ${dot.info.namespace}/${dot.info.name} cannot be deleted`,
          {
            hint: 'delete the dot instead',
          },
        );
      }
      const label: BranchLabel = {
        ...state.label,
        hiddenCommits: [...new Set([...state.label.hiddenCommits, commitId])],
        deletedCommits: [...new Set([...(state.label.deletedCommits ?? []), commitId])],
      };
      const plan = planCollection(ctx.index, dot.id, { labels: new Map([[fsId, label]]) });
      const destroy = plan.emptyRetired.filter((id) => id === fsId || ctx.masterNodes.isMine(id));
      await tx.writeLabel(label, state.label);
      tx.failpoint('delete-commit.after-label');
      const nodeId = ctx.mutations.nodeId;
      tx.storeOps(putDeletedCommit({ fsId, commitId, nodeId, username: caller.name, at: ctx.now() }));
      for (const id of destroy) {
        if (id !== fsId) tx.storeCompare(masterFence(ctx, id));
        const b = ctx.index.requireBranch(id).label.branch;
        destroyOps(tx, { fsId: id, dotId: dot.id, branch: b, info: dot.info, nodeId, username: caller.name, at: ctx.now() });
      }
      if (!destroy.includes(fsId)) {
        const head = headOf(label, state.commits);
        tx.storeOps(
          putBranchState(nodeId, fsId, {
            head,
            commitCount: ctx.index.listedHistoryFrom(head).length,
            active: ctx.masterNodes.isMine(fsId),
          }),
        );
        tx.viewSetLabel(label);
      }
      tx.finish('delete what nothing needs', async () => {
        tx.failpoint('delete-commit.after-store');
        for (const id of destroy) await tx.destroyVolume(id);
        for (const [id, drop] of plan.commits) if (!destroy.includes(id)) await dropCommits(ctx, tx, id, drop);
      });
      const deleted = destroy.includes(fsId) || (plan.commits.get(fsId) ?? []).includes(commitId);
      return { deleted, hidden: !deleted };
    },
  );
  ctx.logger.info({ fsId, commitId, ...result, retired: startLabel.retired !== undefined }, 'deleted a commit');
  return result;
}

function branchAndDot(ctx: Pick<DotContext, 'index'>, fsId: string) {
  const state = ctx.index.requireBranch(fsId);
  const dot = ctx.index.dots.get(state.label.dotId);
  if (!dot) throw new DotmeshError('DOT_NOT_FOUND', `No dot for filesystem id '${fsId}'`);
  return { dot, label: state.label };
}
