import { DotmeshError, MASTER_BRANCH, normalizeBranch, validateName } from '@dotmesh/core';
import { phaseTimer } from '../phase-timer.ts';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import { newBranchLabel } from './labels.ts';
import { resolveBranch } from './resolve.ts';

export interface BranchRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly sourceBranch: unknown;
  readonly newBranchName: unknown;
  readonly sourceCommitId: unknown;
}

/**
 * Creates a branch from a commit of the source branch's history (a writable copy).
 * Steps: volume created with its label ─(branch.after-volume)→ indexed
 * ─(branch.after-index)→ reply. The volume is created atomically with its label, so a crash
 * leaves either no branch or a complete one, which recovery adopts.
 */
export async function createBranch(ctx: DotContext, caller: Caller, req: BranchRequest): Promise<void> {
  const newName = validateName('branch', req.newBranchName);
  if (normalizeBranch(newName) === MASTER_BRANCH) {
    throw new DotmeshError('BRANCH_EXISTS', 'Branch already exists: master');
  }
  const source = resolveBranch(ctx, caller, req.namespace, req.name, req.sourceBranch);
  const commitId = validateName('commit', req.sourceCommitId);
  const { dot } = source;
  ctx.writeGuard.assertWritable(`create branch ${newName} of ${dot.info.namespace}/${dot.info.name}`);
  const phase = phaseTimer();
  await ctx.locks.shared(dot.id, () =>
    ctx.queues.run(`new:${dot.id}/${newName}`, async () => {
      phase.mark('locks');
      if (dot.branches.has(newName)) {
        throw new DotmeshError('BRANCH_EXISTS', `Branch already exists: ${newName}`, {
          hint: `switch to it with 'dm checkout ${newName}'`,
        });
      }
      const origin = ctx.index.history(source.fsId).find((h) => h.commitId === commitId);
      if (!origin) {
        throw new DotmeshError(
          'COMMIT_NOT_FOUND',
          `No commit ${commitId} in the history of branch ${source.branch} of ${dot.info.namespace}/${dot.info.name}`,
          {
            hint: "list commits with 'dm log'",
          },
        );
      }
      const fsId = ctx.newId();
      const label = newBranchLabel({
        fsId,
        dotId: dot.id,
        branch: newName,
        origin: { fsId: origin.fsId, commitId },
        createdAt: ctx.now().toISOString(),
      });
      await ctx.driver.createVolume(fsId, { ...label }, { from: { volumeId: origin.fsId, commitId } });
      phase.mark('volume');
      try {
        ctx.failpoints.hit('branch.after-volume');
        ctx.index.addBranch(label, []);
        await ctx.mirror.syncDot(dot.id);
        phase.mark('store');
        ctx.failpoints.hit('branch.after-index');
      } catch (e) {
        ctx.index.removeBranch(fsId);
        await ctx.driver
          .deleteVolume(fsId)
          .catch((err: unknown) => ctx.logger.warn({ err, fsId }, 'cleanup after failed branch'));
        await ctx.mirror.syncDot(dot.id).catch(() => undefined);
        throw e;
      }
      ctx.logger.info({ dotId: dot.id, branch: newName, fsId, origin: label.origin, ms: phase.totals() }, 'created branch');
    }),
  );
}
