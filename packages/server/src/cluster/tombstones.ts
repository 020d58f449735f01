import type { DotContext } from '../dots/context.ts';
import { finishDelete } from '../dots/create-delete.ts';
import { dropOwnKeys } from '../dots/mutation/store-writes.ts';
import type { ClusterView } from './view.ts';

/**
 * Deletes made on another node reach this one as tombstones (`filesystems/deleted/<fsId>`):
 * this node then destroys its copy of that dot (or branch) through the mutation path, as a
 * delete whose store side is only its own keys. A node that was down during the delete does
 * the same at start (reconcile-store.ts).
 */
export function followTombstones(ctx: Pick<DotContext, 'index' | 'mutations' | 'logger'>, view: ClusterView): () => void {
  return view.onChange((change) => {
    if (change.kind !== 'deleted') return;
    void destroyDeletedCopy(ctx, change.fsId).catch((err: unknown) =>
      ctx.logger.error({ err, fsId: change.fsId }, 'could not destroy this node’s copy of a deleted dot'),
    );
  });
}

/** Destroys this node's copy of a deleted dot (its id) or branch; nothing when it holds none. */
export async function destroyDeletedCopy(ctx: Pick<DotContext, 'index' | 'mutations' | 'logger'>, fsId: string): Promise<void> {
  const dot = ctx.index.dots.get(fsId);
  const branch = dot ? undefined : ctx.index.branches.get(fsId);
  const dotId = dot?.id ?? branch?.label.dotId;
  if (dotId === undefined) return;
  await ctx.mutations.run(
    { op: 'delete', what: `remove this node's copy of deleted ${fsId}`, dotId, dotLock: 'exclusive', evenWhenFull: true },
    async (tx) => {
      const nodeId = ctx.mutations.nodeId;
      if (dot) {
        if (ctx.index.dots.get(dotId) !== dot) return;
        const master = ctx.index.branches.get(dotId);
        const fsIds = [...dot.branches.values()];
        if (master) await tx.writeIntent(master.label, { op: 'delete', opId: tx.newId() }, master.label);
        tx.storeFollowUps(...fsIds.flatMap((id) => dropOwnKeys(nodeId, id)));
        tx.viewRemoveDot(dotId);
        tx.finish('destroy the copy', () => finishDelete(tx, dotId, fsIds));
      } else if (branch && ctx.index.branches.get(fsId) === branch) {
        tx.storeFollowUps(...dropOwnKeys(nodeId, fsId));
        tx.viewRemoveBranch(fsId);
        tx.finish('destroy the branch copy', () => tx.destroyVolume(fsId));
      }
      ctx.logger.info({ fsId, dotId }, 'removing this node’s copy of a dot deleted elsewhere');
    },
  );
}
