import { DotmeshError, validateCommitMetadata } from '@dotmesh/core';
import type { Caller } from './caller.ts';
import { type DotContext, timestampNs } from './context.ts';
import type { CommitMetaRecord } from './labels.ts';
import { resolveBranch } from './resolve.ts';

export interface CommitRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly branch: unknown;
  readonly message: unknown;
  readonly metadata: unknown;
}

/**
 * Commits a branch's live state. Steps: snapshot with its metadata inside
 * ─(commit.after-snapshot)→ indexed ─(commit.after-index)→ reply. The snapshot is atomic and
 * durable before the driver returns, so a crash after it leaves a complete commit that
 * recovery adopts; before it, no commit. Replies only once snapshot and store are durable.
 */
export async function commitBranch(ctx: DotContext, caller: Caller, req: CommitRequest): Promise<string> {
  if (typeof req.message !== 'string' || req.message === '') {
    throw new DotmeshError('INVALID_ARGUMENT', 'Please provide a commit message', { hint: 'pass -m "<message>"' });
  }
  if (Buffer.byteLength(req.message) > 64 * 1024) {
    throw new DotmeshError('INVALID_ARGUMENT', 'Commit message is larger than 64 KiB');
  }
  const { metadata, commitIdOverride } = validateCommitMetadata(req.metadata);
  const { dot, fsId } = resolveBranch(ctx, caller, req.namespace, req.name, req.branch);
  ctx.writeGuard.assertWritable(`commit ${dot.info.namespace}/${dot.info.name}`);
  return ctx.locks.shared(dot.id, () =>
    ctx.queues.run(fsId, async () => {
      const branch = ctx.index.requireBranch(fsId);
      const commitId = commitIdOverride ?? ctx.newId();
      if (ctx.index.dotHasCommit(dot, commitId)) {
        throw new DotmeshError(
          'COMMIT_EXISTS',
          `Commit id ${commitId} already exists in ${dot.info.namespace}/${dot.info.name}`,
          {
            hint: 'commit ids given with #commit-id must be new in the dot',
          },
        );
      }
      const meta: CommitMetaRecord = {
        metadata: { ...metadata, message: req.message as string, author: caller.name, timestamp: timestampNs(ctx.now()) },
        parent: ctx.index.head(fsId),
      };
      const info = await ctx.driver.commit(fsId, commitId, { ...meta });
      ctx.failpoints.hit('commit.after-snapshot');
      branch.commits.push({ id: commitId, seq: info.seq, meta });
      await ctx.mirror.syncDot(dot.id);
      ctx.failpoints.hit('commit.after-index');
      ctx.logger.info({ fsId, commitId }, 'committed');
      return commitId;
    }),
  );
}
