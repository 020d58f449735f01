import { DotmeshError, validateFsId } from '@dotmesh/core';
import type { CommitItem } from '@dotmesh/rpc';
import { type Caller, canAccess } from './caller.ts';
import type { DotContext } from './context.ts';

/** A branch's commits in the API's shape, oldest first. */
export function commitItems(ctx: Pick<DotContext, 'index'>, fsId: string): CommitItem[] {
  return ctx.index.commitRecords(fsId).map((c) => ({ Id: c.id, Metadata: { ...c.metadata } }));
}

/** A branch by filesystem id, for a caller who may see its dot. */
export function requireVisibleFs(ctx: Pick<DotContext, 'index'>, caller: Caller, fsId: unknown): string {
  const id = validateFsId(fsId);
  const branch = ctx.index.branches.get(id);
  const dot = branch ? ctx.index.dots.get(branch.label.dotId) : undefined;
  if (!branch || !dot || !canAccess(caller, dot.info)) {
    throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${id}'`, { hint: 'look the id up with Lookup' });
  }
  return id;
}
