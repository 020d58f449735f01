import { abbreviate, DotmeshError, validateName } from '@dotmesh/core';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import { requireVisibleFs } from './views.ts';

/**
 * MountCommit: the host path of a commit's read-only data, for a commit in the history of a
 * branch the caller can see. On btrfs a commit is a read-only snapshot already in the pool,
 * so nothing is mounted: the path is valid while the commit exists (a rollback may delete
 * commits it leaves unreachable); writes there fail with EROFS.
 */
export function mountCommit(ctx: DotContext, caller: Caller, fsId: unknown, commitId: unknown): string {
  const id = requireVisibleFs(ctx, caller, fsId);
  const commit = validateName('commit', commitId);
  const found = ctx.index.history(id).find((h) => h.commitId === commit);
  if (!found) {
    throw new DotmeshError('COMMIT_NOT_FOUND', `No commit ${commit} in the history of filesystem ${id}`, {
      hint: 'list commits with CommitsById',
    });
  }
  return ctx.storage.commitPath(found.fsId, commit);
}

/**
 * ForceBranchMasterById on a single node: every branch is mastered by this node, so `Master`
 * "" (the node serving the call, as the original) or this node's id succeed and change
 * nothing; any other id names a node this cluster does not have. Not admin-gated (as the
 * original), but the caller must see the branch.
 */
export function forceBranchMaster(ctx: DotContext, caller: Caller, fsId: unknown, master: string): void {
  const id = requireVisibleFs(ctx, caller, fsId);
  if (master === '' || master === ctx.nodeId) return;
  throw new DotmeshError(
    'INVALID_ARGUMENT',
    `Cannot make ${JSON.stringify(abbreviate(master))} the master of filesystem ${id}: this cluster has one server, ${ctx.nodeId}`,
    { hint: `pass "" or "${ctx.nodeId}" (multi-node clusters are not supported yet)` },
  );
}
