import {
  DotmeshError,
  isRetiredBranchName,
  MASTER_BRANCH,
  normalizeBranch,
  phaseTimer,
  RETIRED_BRANCH_PREFIX,
  validateName,
} from '@dotmesh/core';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import { newBranchLabel } from './labels.ts';
import { claimBranch } from './mutation/store-writes.ts';
import { resolveBranch } from './resolve.ts';

export interface BranchRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly sourceBranch: unknown;
  readonly newBranchName: unknown;
  readonly sourceCommitId: unknown;
}

export type BranchDeps = Pick<DotContext, 'index' | 'view' | 'mutations' | 'writeGuard' | 'logger' | 'now' | 'newId'>;

/**
 * Creates a branch from a commit of the source branch's history (a writable copy), on the
 * source branch's master node, which becomes the new branch's master. Steps: volume created
 * with its label (undone if the store write fails) ─(branch.after-volume)→ stored: clone
 * record, master key and this copy's state, the name compared free ─(branch.after-store)→.
 * The volume is created atomically with its label, so a crash leaves either no branch or a
 * complete one, which recovery adopts.
 */
export async function createBranch(ctx: BranchDeps, caller: Caller, req: BranchRequest): Promise<void> {
  const newName = validateName('branch', req.newBranchName);
  if (normalizeBranch(newName) === MASTER_BRANCH) {
    throw new DotmeshError('BRANCH_EXISTS', 'Branch already exists: master');
  }
  if (isRetiredBranchName(newName)) {
    throw new DotmeshError(
      'INVALID_NAME',
      `invalid branch name ${JSON.stringify(newName)}: ${RETIRED_BRANCH_PREFIX}… names deleted branches`,
      {
        hint: 'choose another name',
      },
    );
  }
  const source = resolveBranch(ctx, caller, req.namespace, req.name, req.sourceBranch);
  const commitId = validateName('commit', req.sourceCommitId);
  const { dot } = source;
  const what = `create branch ${newName} of ${dot.info.namespace}/${dot.info.name}`;
  ctx.writeGuard.assertWritable(what);
  const phase = phaseTimer(() => performance.now());
  const fsId = await ctx.mutations.run(
    {
      op: 'branch',
      what,
      dotId: dot.id,
      dotLock: 'shared',
      queues: [`new:${dot.id}/${newName}`],
      mastered: [source.fsId],
      timer: phase,
    },
    async (tx) => {
      if (dot.branches.has(newName) || ctx.view.branchesOf(dot.id).has(newName)) {
        throw new DotmeshError('BRANCH_EXISTS', `Branch already exists: ${newName}`, {
          hint: `switch to it with 'dm checkout ${newName}'`,
        });
      }
      const history = ctx.index.history(source.fsId);
      const at = history.findIndex((h) => h.commitId === commitId);
      if (at < 0 || ctx.index.isDeletedCommit(history[at]!)) {
        throw new DotmeshError(
          'COMMIT_NOT_FOUND',
          `No commit ${commitId} in the history of branch ${source.branch} of ${dot.info.namespace}/${dot.info.name}`,
          { hint: "list commits with 'dm log'" },
        );
      }
      const origin = { fsId: history[at]!.fsId, commitId };
      const fsId = ctx.newId();
      const label = newBranchLabel({ fsId, dotId: dot.id, branch: newName, origin, createdAt: ctx.now().toISOString() });
      await tx.createVolume(label, origin);
      tx.mark('volume');
      tx.failpoint('branch.after-volume');
      const claim = claimBranch(ctx.mutations.nodeId, label, {
        head: origin,
        commitCount: ctx.index.listedHistoryFrom(origin).length,
      });
      tx.storeCompare(...claim.compare);
      tx.storeOps(...claim.ops);
      tx.viewAddBranch(label, []);
      tx.finish('branch.after-store', async () => tx.failpoint('branch.after-store'));
      return fsId;
    },
  );
  ctx.logger.info({ dotId: dot.id, branch: newName, fsId, ms: phase.totals() }, 'created branch');
}
