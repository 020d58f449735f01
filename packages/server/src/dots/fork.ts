import { DotmeshError, validateFsId, validateName } from '@dotmesh/core';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import { materializeDot } from './create-delete.ts';
import { DotIndex } from './dot-index.ts';

export const FORK_COMMIT_TYPE = 'fork';

/**
 * `Fork` (admin): a new dot `ns/name` whose data starts as a copy of the latest commit of
 * another dot's master branch, recorded as its ForkParentId / ForkParentSnapshotId. The fork
 * has its own id and history (one first commit, "Forked from …"): the parent's history stays
 * with the parent, so the two never look like the same dot to a transfer.
 * Steps as createDot (materializeDot), the volume made from the parent's commit.
 */
export async function forkDot(
  ctx: DotContext,
  caller: Caller,
  req: { parentId: unknown; namespace: unknown; name: unknown },
  ownerOf: (namespace: string) => Promise<string>,
): Promise<string> {
  const parentId = validateFsId(req.parentId, 'MasterBranchID');
  const namespace = validateName('namespace', req.namespace);
  const name = validateName('dot', req.name);
  const parent = ctx.index.dots.get(parentId);
  if (!parent) throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${parentId}'`);
  ctx.writeGuard.assertWritable(`fork ${parent.info.namespace}/${parent.info.name}`);
  const ownerId = await ownerOf(namespace);
  return ctx.locks.exclusive(`name:${DotIndex.nameKey(namespace, name)}`, () =>
    ctx.locks.shared(parentId, async () => {
      if (ctx.index.dotIdByName(namespace, name) !== undefined) {
        throw new DotmeshError('DOT_EXISTS', `A dot named '${namespace}/${name}' already exists`, {
          hint: 'choose another name for the fork',
        });
      }
      const head = ctx.index.head(ctx.index.masterFsId(parent));
      if (!head) throw new DotmeshError('COMMIT_NOT_FOUND', `${parent.info.namespace}/${parent.info.name} has no commit to fork`);
      const dotId = ctx.newId();
      const createdAt = ctx.now().toISOString();
      await materializeDot(ctx, {
        dotId,
        info: {
          namespace,
          name,
          ownerId,
          collaboratorIds: [],
          createdAt,
          forkParentId: parentId,
          forkParentSnapshotId: head.commitId,
        },
        from: head,
        firstCommit: {
          type: FORK_COMMIT_TYPE,
          message: `Forked from ${parent.info.namespace}/${parent.info.name} at ${head.commitId}`,
          author: caller.name,
        },
      });
      ctx.logger.info({ dotId, parentId, namespace, name }, 'forked dot');
      return dotId;
    }),
  );
}
