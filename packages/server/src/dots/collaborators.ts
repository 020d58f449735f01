import { DotmeshError, MASTER_BRANCH, validateFsId } from '@dotmesh/core';
import { type Caller, canAccess, requireOwner } from './caller.ts';
import type { DotContext } from './context.ts';
import type { IndexedDot } from './dot-index.ts';
import type { BranchLabel, DotInfo } from './labels.ts';
import { putRegistry } from './mutation/store-writes.ts';

/**
 * Adds or removes a collaborator of a dot (AddCollaborator / RemoveCollaborator), on the
 * master node of the dot's master branch. The list lives in the master branch's label in the
 * pool and in the dot's registry record (`CollaboratorIds`), written in one mutation. Owner or admin only; the dot is named by its master
 * branch id (as the original). Adding a present collaborator or removing an absent one
 * changes nothing.
 */
export async function setCollaborator(
  ctx: Pick<DotContext, 'index' | 'mutations' | 'logger'>,
  caller: Caller,
  masterBranchId: string,
  findUser: () => Promise<{ readonly id: string; readonly name: string }>,
  add: boolean,
): Promise<void> {
  const dot = requireVisibleMaster(ctx, caller, masterBranchId);
  const what = add ? 'add collaborators' : 'remove collaborators';
  requireOwner(caller, dot.info, what);
  // Looked up only now, so callers who may not change the dot learn nothing about users.
  const collaborator = await findUser();
  if (add && collaborator.id === dot.info.ownerId) {
    throw new DotmeshError('INVALID_ARGUMENT', `${collaborator.name} owns ${dot.info.namespace}/${dot.info.name} already`);
  }
  if (!add && collaborator.id === caller.id) {
    throw new DotmeshError('INVALID_ARGUMENT', 'You cannot remove yourself as a collaborator');
  }
  const changed = await ctx.mutations.run(
    {
      op: 'collaborators',
      what: `${what} of ${dot.info.namespace}/${dot.info.name}`,
      dotId: dot.id,
      dotLock: 'exclusive',
      mastered: [dot.id],
      evenWhenFull: true,
    },
    async (tx) => {
      const current = ctx.index.dots.get(dot.id);
      const master = ctx.index.branches.get(dot.id);
      if (current !== dot || !master?.label.dot) throw noSuchMaster(masterBranchId);
      const before = master.label.dot.collaboratorIds;
      const present = before.includes(collaborator.id);
      if (present === add) return false;
      const collaboratorIds = add ? [...before, collaborator.id] : before.filter((id) => id !== collaborator.id);
      const info: DotInfo = { ...master.label.dot, collaboratorIds };
      const label: BranchLabel = { ...master.label, dot: info };
      await tx.writeLabel(label, master.label);
      tx.storeOps(putRegistry(dot.id, info));
      tx.viewSetLabel(label);
      tx.viewSetDotInfo(dot.id, info);
      return true;
    },
  );
  if (changed) {
    ctx.logger.info(
      { dotId: dot.id, collaborator: collaborator.id, by: caller.id },
      add ? 'added collaborator' : 'removed collaborator',
    );
  }
}

/** The dot whose master branch has this id, for a caller who may see it. */
function requireVisibleMaster(ctx: Pick<DotContext, 'index'>, caller: Caller, masterBranchId: string): IndexedDot {
  const id = validateFsId(masterBranchId, 'master branch id');
  const branch = ctx.index.branches.get(id);
  const dot = branch ? ctx.index.dots.get(branch.label.dotId) : undefined;
  if (!branch || !dot || !canAccess(caller, dot.info)) throw noSuchMaster(id);
  if (branch.label.branch !== MASTER_BRANCH) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `'${id}' is the id of branch ${branch.label.branch}, not of a master branch: collaborators belong to a whole dot`,
      { hint: `use the dot's master branch id ${ctx.index.masterBranchId(dot)}` },
    );
  }
  return dot;
}

function noSuchMaster(id: string): DotmeshError {
  return new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${id}'`, { hint: 'look the id up with Lookup' });
}
