import { DotmeshError, validateName } from '@dotmesh/core';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import { requireVisibleFs } from './views.ts';

/**
 * MountCommit: the host path of a commit's read-only data, for a commit in the history of a
 * branch the caller can see. On btrfs a commit is a read-only snapshot already in the pool,
 * so nothing is mounted: the path is valid while the commit exists (a rollback may delete
 * commits it leaves unreachable); writes there fail with EROFS.
 */
export function mountCommit(
  ctx: Pick<DotContext, 'index' | 'storage'>,
  caller: Caller,
  fsId: unknown,
  commitId: unknown,
): string {
  const id = requireVisibleFs(ctx, caller, fsId);
  const commit = validateName('commit', commitId);
  const found = ctx.index.listedHistory(id).find((h) => h.commitId === commit);
  if (!found) {
    throw new DotmeshError('COMMIT_NOT_FOUND', `No commit ${commit} in the history of filesystem ${id}`, {
      hint: 'list commits with CommitsById',
    });
  }
  return ctx.storage.commitPath(found.fsId, commit);
}
