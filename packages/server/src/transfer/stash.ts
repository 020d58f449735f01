import { type CommitOrigin, DotmeshError, divergedBranchName } from '@dotmesh/core';
import { activeContainersError } from '@dotmesh/transfer';
import { KEYS } from '../cluster/store-keys.ts';
import { type Caller, canAccess } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import type { IndexedBranch, IndexedDot } from '../dots/dot-index.ts';
import { type BranchLabel, newBranchLabel } from '../dots/labels.ts';
import { absent, claimBranch, putClone } from '../dots/mutation/store-writes.ts';
import { refuseIfInUse, resetBranchTo } from '../dots/rollback.ts';

/**
 * Moves a branch's commits after `common` (all its commits when `common` is null) aside, to a
 * new branch `<branch>-DIVERGED-<time>`, and resets the branch to `common`: the divergence
 * half of `--stash-on-divergence`. Nothing is lost: the new branch starts at the old head, so
 * its history holds every moved commit (they stay in the old volume, hidden there).
 * Returns the new branch's name, or "" when there was nothing after `common`.
 *
 * Steps: DIVERGED branch volume created from the head, indexed ─(stash.after-branch)→ label
 * with the shortened history and a rollback intent ─→ live swapped to `common` ─→ label
 * without intent ─(stash.after-label)→ mirrored. With no common commit the live state is left
 * as it is: the first incoming commit replaces it. On a replica (a copy this node does not
 * master) no mastership is needed; it stays inactive and the stash branch is this node's.
 */
export async function stashAfter(
  ctx: Pick<
    DotContext,
    'index' | 'mutations' | 'storage' | 'containers' | 'inUse' | 'publications' | 'writeGuard' | 'logger' | 'now'
  >,
  caller: Caller,
  fsId: string,
  commonCommitId: string | null,
): Promise<string> {
  const { state, dot } = visibleBranch(ctx, caller, fsId);
  const dotName = `${dot.info.namespace}/${dot.info.name}`;
  const what = `stash diverged commits of ${dotName}`;
  ctx.writeGuard.assertWritable(what);
  // A replica's copy (a handoff or replication into it) is stashed without mastership: what
  // it holds beyond the master's history is its own, and the master's records stay as they are.
  const mastered = state.label.replica === true ? [] : [fsId];
  const name = await ctx.mutations.run(
    { op: 'stash', what, dotId: dot.id, dotLock: 'exclusive', queues: [fsId], mastered },
    async (tx) => {
      const history = ctx.index.history(fsId);
      const head = ctx.index.head(fsId);
      let common: CommitOrigin | null = null;
      let commonAt = -1;
      if (commonCommitId !== null) {
        commonAt = history.findIndex((h) => h.commitId === commonCommitId);
        const entry = history[commonAt];
        if (!entry) {
          throw new DotmeshError(
            'COMMIT_NOT_FOUND',
            `No commit ${commonCommitId} in the history of ${dotName}@${state.label.branch}`,
          );
        }
        common = { fsId: entry.fsId, commitId: entry.commitId };
      }
      if (!head || (common && head.commitId === common.commitId && head.fsId === common.fsId)) return '';
      await refuseIfInUse(ctx, fsId, dotName);

      const name = freeDivergedName(ctx, dot, state.label.branch);
      const stashLabel = newBranchLabel({
        fsId: tx.newId(),
        dotId: dot.id,
        branch: name,
        origin: head,
        createdAt: ctx.now().toISOString(),
      });
      await tx.createVolume(stashLabel, head);
      tx.failpoint('stash.after-branch');
      const claim = claimBranch(ctx.mutations.nodeId, stashLabel, { head, commitCount: history.length });
      tx.storeCompare(...claim.compare);
      tx.storeOps(...claim.ops);
      tx.viewAddBranch(stashLabel, []);
      await resetBranchTo(ctx, tx, state, common, { commitCount: commonAt + 1, failpoints: 'stash' });
      tx.finish('stash.after-label', async () => tx.failpoint('stash.after-label'));
      ctx.logger.info({ fsId, stash: name, newFsId: stashLabel.fsId, common }, 'stashing diverged commits');
      return name;
    },
  );
  return name;
}

/**
 * Renames a branch out of the way of an incoming branch of the same name that was made
 * independently (another id): the branch keeps its volume, id and commits under the name
 * `<branch>-DIVERGED-<time>`; no data moves. Refused (IN_USE) while containers use it.
 * One label write (undone if the store write fails): a crash leaves the old or the new name.
 */
export async function stashBranch(
  ctx: Pick<DotContext, 'index' | 'mutations' | 'containers' | 'logger' | 'now'>,
  caller: Caller,
  fsId: string,
): Promise<string> {
  const { state, dot } = visibleBranch(ctx, caller, fsId);
  if (state.label.branch === 'master') throw new DotmeshError('INVALID_ARGUMENT', 'the master branch cannot be renamed');
  const what = `rename branch ${state.label.branch} of ${dot.info.namespace}/${dot.info.name}`;
  return ctx.mutations.run(
    { op: 'rename', what, dotId: dot.id, dotLock: 'exclusive', queues: [fsId], mastered: [fsId], evenWhenFull: true },
    async (tx) => {
      const containers = await ctx.containers.containersFor(fsId);
      if (containers.length > 0) throw activeContainersError(containers.map((c) => c.Name));
      const old = state.label.branch;
      const name = freeDivergedName(ctx, dot, old);
      const label: BranchLabel = { ...state.label, branch: name };
      await tx.writeLabel(label, state.label);
      tx.storeCompare(absent(KEYS.clone(dot.id, name)));
      tx.storeOps({ type: 'delete', key: KEYS.clone(dot.id, old) }, putClone(label));
      tx.viewSetLabel(label);
      ctx.logger.info({ fsId, from: old, to: name }, 'renaming a branch out of the way of an incoming one');
      return name;
    },
  );
}

/** A branch by filesystem id, with its dot, for a caller who may see that dot. */
function visibleBranch(ctx: Pick<DotContext, 'index'>, caller: Caller, fsId: string): { state: IndexedBranch; dot: IndexedDot } {
  const state = ctx.index.branches.get(fsId);
  const dot = state ? ctx.index.dots.get(state.label.dotId) : undefined;
  if (!state || !dot || !canAccess(caller, dot.info)) {
    throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${fsId}'`);
  }
  return { state, dot };
}

/** `<branch>-DIVERGED-<now>`, made unique in the dot (`<branch>-2-DIVERGED-…` and so on). */
function freeDivergedName(ctx: Pick<DotContext, 'now'>, dot: IndexedDot, branch: string): string {
  let name = divergedBranchName(branch, ctx.now());
  for (let n = 2; dot.branches.has(name); n++) name = divergedBranchName(`${branch}-${n}`, ctx.now());
  return name;
}
