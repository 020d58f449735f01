import { DotmeshError, validateFsId, validateName } from '@dotmesh/core';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import { materializeDot, nameLockKey } from './create-delete.ts';

export const FORK_COMMIT_TYPE = 'fork';

/**
 * `Fork` (admin): a new dot `ns/name` whose data starts as a copy of the latest commit of
 * another dot's master branch, recorded as its ForkParentId / ForkParentSnapshotId. The fork
 * has its own id and history (one first commit, "Forked from …"): the parent's history stays
 * with the parent, so the two never look like the same dot to a transfer.
 * Steps as createDot (materializeDot), the volume made from the parent's commit, on the node
 * that masters the parent's master branch.
 */
export async function forkDot(
  ctx: Pick<DotContext, 'index' | 'view' | 'mutations' | 'writeGuard' | 'logger' | 'now' | 'newId'>,
  caller: Caller,
  req: { parentId: unknown; namespace: unknown; name: unknown },
  ownerOf: (namespace: string) => Promise<string>,
): Promise<string> {
  const parentId = validateFsId(req.parentId, 'MasterBranchID');
  const namespace = validateName('namespace', req.namespace);
  const name = validateName('dot', req.name);
  const parent = ctx.index.dots.get(parentId);
  if (!parent) throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${parentId}'`);
  const what = `fork ${parent.info.namespace}/${parent.info.name}`;
  ctx.writeGuard.assertWritable(what);
  const ownerId = await ownerOf(namespace);
  const dotId = ctx.newId();
  // The parent's lock is held shared, so its head commit cannot be collected while it is copied.
  await ctx.mutations.run(
    {
      op: 'fork',
      what,
      dotId,
      dotLock: 'exclusive',
      nameLock: nameLockKey(namespace, name),
      readLocks: [parentId],
      mastered: [parentId],
    },
    async (tx) => {
      const head = ctx.index.head(ctx.index.masterBranchId(parent));
      if (!head) throw new DotmeshError('COMMIT_NOT_FOUND', `${parent.info.namespace}/${parent.info.name} has no commit to fork`);
      await materializeDot(ctx, tx, {
        dotId,
        info: {
          namespace,
          name,
          ownerId,
          collaboratorIds: [],
          createdAt: ctx.now().toISOString(),
          forkParentId: parentId,
          forkParentSnapshotId: head.commitId,
        },
        from: head,
        firstCommit: {
          type: FORK_COMMIT_TYPE,
          message: `Forked from ${parent.info.namespace}/${parent.info.name} at ${head.commitId}`,
          author: caller.name,
        },
        existsHint: 'choose another name for the fork',
      });
    },
  );
  ctx.logger.info({ dotId, parentId, namespace, name }, 'forked dot');
  return dotId;
}
