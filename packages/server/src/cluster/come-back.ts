import { timestampNs } from '../dots/context.ts';
import type { IndexedCommit } from '../dots/dot-index.ts';
import type { CommitMetaRecord } from '../dots/labels.ts';
import { putBranchState, putHeldCommit } from '../dots/mutation/store-writes.ts';
import type { HandoffContext } from './handoff.ts';

/**
 * This node's copy of a branch another node masters now (a forced move, a failover while this
 * node was cut off or down): it stops being a master's copy, in one mutation. Its live data is
 * made read-only (never two writers) ─→ uncommitted data is committed (`type: stashing`, author
 * `system`; its parent the copy's head) ─→ the label says replica and the copy is advertised
 * inactive. The commits the new master lacks — the stashing one included — reach a
 * `<branch>-DIVERGED-<time>` branch of this node's when the new master's replication sends the
 * branch here (the receive path's stash, transfer/stash.ts), and the replica continues from the
 * newest common commit. A no-op when the copy is a replica already, or this node masters the
 * branch again. Returns the stashing commit's id ("" when there was nothing uncommitted).
 */
export async function standDown(ctx: HandoffContext, fsId: string): Promise<string> {
  const state = ctx.index.branches.get(fsId);
  if (!state || state.label.replica === true || ctx.masterNodes.isMine(fsId)) return '';
  const master = ctx.masterNodes.get(fsId)?.nodeId ?? '';
  const stashed = await ctx.mutations.run(
    {
      op: 'mastership',
      what: `stand down as master of ${fsId}`,
      dotId: state.label.dotId,
      dotLock: 'exclusive',
      queues: [fsId],
      evenWhenFull: true,
    },
    async (tx) => {
      const current = ctx.index.requireBranch(fsId).label;
      if (current.replica === true || ctx.masterNodes.isMine(fsId)) return undefined;
      await tx.fenceLive(fsId);
      let head = ctx.index.head(fsId);
      let commitCount = ctx.index.listedHistory(fsId).length;
      let stashing = '';
      if ((await ctx.storage.sizes([fsId], { referenced: false })).get(fsId)?.dirty) {
        stashing = tx.newId();
        const meta: CommitMetaRecord = {
          metadata: {
            message: `Uncommitted data on node ${ctx.nodeId} when node ${master} took the branch over.`,
            author: 'system',
            type: 'stashing',
            timestamp: timestampNs(ctx.now()),
          },
          parent: head,
        };
        const info = await tx.commit(fsId, stashing, meta);
        const commit: IndexedCommit = { id: stashing, seq: info.seq, meta };
        tx.storeOps(putHeldCommit(ctx.nodeId, fsId, commit));
        tx.viewAddCommit(fsId, commit);
        head = { fsId, commitId: stashing };
        commitCount++;
      }
      const label = { ...current, replica: true };
      await tx.writeLabel(label, current);
      tx.viewSetLabel(label);
      tx.storeOps(putBranchState(ctx.nodeId, fsId, { head, commitCount, active: false }));
      return stashing;
    },
  );
  if (stashed === undefined) return '';
  ctx.logger.info(
    { fsId, master, ...(stashed ? { stashingCommit: stashed } : {}) },
    'another node masters this branch now: this copy is a read-only replica',
  );
  return stashed;
}
