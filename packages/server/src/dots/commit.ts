import { DotmeshError, validateCommitMetadata } from '@dotmesh/core';
import type { Caller } from './caller.ts';
import { type DotContext, timestampNs } from './context.ts';
import type { IndexedCommit } from './dot-index.ts';
import type { CommitMetaRecord } from './labels.ts';
import { putBranchState, putHeldCommit } from './mutation/store-writes.ts';
import { resolveBranch } from './resolve.ts';

export interface CommitRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly branch: unknown;
  readonly message: unknown;
  readonly metadata: unknown;
}

export type CommitDeps = Pick<DotContext, 'index' | 'mutations' | 'writeGuard' | 'logger' | 'now' | 'newId'>;

/**
 * Commits a branch's live state (the master node's). Steps: snapshot with its metadata inside
 * (undone if the store write fails) ─(commit.after-snapshot)→ stored: the held commit and the
 * branch's new head, fenced on the master key ─(commit.after-store)→ reply. A crash after the
 * snapshot leaves a complete commit that start-up recovery adopts; before it, no commit.
 */
export async function commitBranch(ctx: CommitDeps, caller: Caller, req: CommitRequest): Promise<string> {
  if (typeof req.message !== 'string' || req.message === '') {
    throw new DotmeshError('INVALID_ARGUMENT', 'Please provide a commit message', { hint: 'pass -m "<message>"' });
  }
  if (Buffer.byteLength(req.message) > 64 * 1024) {
    throw new DotmeshError('INVALID_ARGUMENT', 'Commit message is larger than 64 KiB');
  }
  const { metadata, commitIdOverride } = validateCommitMetadata(req.metadata);
  const { dot, fsId } = resolveBranch(ctx, caller, req.namespace, req.name, req.branch);
  const what = `commit ${dot.info.namespace}/${dot.info.name}`;
  ctx.writeGuard.assertWritable(what);
  const message = req.message;
  const commitId = await ctx.mutations.run(
    { op: 'commit', what, dotId: dot.id, dotLock: 'shared', queues: [fsId], mastered: [fsId] },
    async (tx) => {
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
        metadata: { ...metadata, message, author: caller.name, timestamp: timestampNs(ctx.now()) },
        parent: ctx.index.head(fsId),
      };
      const info = await tx.commit(fsId, commitId, meta);
      tx.failpoint('commit.after-snapshot');
      const commit: IndexedCommit = { id: commitId, seq: info.seq, meta };
      tx.storeOps(
        putHeldCommit(ctx.mutations.nodeId, fsId, commit),
        putBranchState(ctx.mutations.nodeId, fsId, {
          head: { fsId, commitId },
          commitCount: ctx.index.listedHistory(fsId).length + 1,
          active: true,
        }),
      );
      tx.viewAddCommit(fsId, commit);
      tx.finish('commit.after-store', async () => tx.failpoint('commit.after-store'));
      return commitId;
    },
  );
  ctx.logger.info({ fsId, commitId }, 'committed');
  return commitId;
}
