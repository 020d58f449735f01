import { DotmeshError, deMasterify, validateFsId } from '@dotmesh/core';
import type { CommitItem, DotmeshVolume } from '@dotmesh/rpc';
import type { VolumeSizes } from '@dotmesh/storage';
import { type Caller, canAccess } from './caller.ts';
import type { DotContext } from './context.ts';

/** Builds the API's view of one branch (DotmeshVolume), exactly in the original's shape. */
export function volumeView(
  ctx: Pick<DotContext, 'index' | 'nodeId'>,
  fsId: string,
  sizes: Map<string, VolumeSizes>,
): DotmeshVolume {
  const branch = ctx.index.requireBranch(fsId);
  const dot = ctx.index.dots.get(branch.label.dotId);
  if (!dot) throw new DotmeshError('DOT_NOT_FOUND', `No dot for filesystem id '${fsId}'`);
  const size = sizes.get(fsId);
  const commitCount = ctx.index.history(fsId).length;
  return {
    Id: fsId,
    Name: { Namespace: dot.info.namespace, Name: dot.info.name },
    Branch: deMasterify(branch.label.branch),
    Master: ctx.nodeId,
    SizeBytes: size?.referencedBytes ?? 0,
    DirtyBytes: size?.dirty ? Math.max(size.dirtyBytes, 1) : 0,
    CommitCount: commitCount,
    ServerStates: { [ctx.nodeId]: 'active' },
    ServerStatuses: { [ctx.nodeId]: `active, ${commitCount} commits` },
    ForkParentId: dot.info.forkParentId ?? '',
    ForkParentSnapshotId: dot.info.forkParentSnapshotId ?? '',
  };
}

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
