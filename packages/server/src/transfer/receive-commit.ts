import { type CommitOrigin, DotmeshError, MASTER_BRANCH, phaseTimer } from '@dotmesh/core';
import type { IncomingCommit } from '@dotmesh/transfer';
import { KEYS } from '../cluster/store-keys.ts';
import type { Caller } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import type { IndexedCommit } from '../dots/dot-index.ts';
import { type BranchLabel, parseCommitMeta } from '../dots/labels.ts';
import { absent, claimBranch, putBranchState, putHeldCommit, putRegistry } from '../dots/mutation/store-writes.ts';
import type { CommitInput, MutationTx } from '../dots/mutation/tx.ts';
import { refuseIfInUse } from '../dots/rollback.ts';
import { ensureVolume, incomingDot } from './incoming.ts';

export interface ReceiveDeps {
  /** The owner of a dot created by an incoming transfer in `namespace`. */
  readonly ownerOf: (caller: Caller, namespace: string) => Promise<string>;
  /** The commits come from the branch's master node: LocalSideOptions.replica (@dotmesh/transfer). */
  readonly replica?: boolean;
}

export type ReceiveContext = Pick<
  DotContext,
  'index' | 'view' | 'storage' | 'mutations' | 'containers' | 'inUse' | 'publications' | 'writeGuard' | 'logger' | 'now'
>;

/**
 * Applies one framed commit stream (the driver's exportCommit of the sending side) to this
 * server, in one mutation under the dot's exclusive lock:
 *
 * - the commit goes into its volume (created if missing, see ensureVolume);
 * - in the transfer's target branch it must extend the branch's head and becomes the new head:
 *   the live state follows it (refused while processes hold the live data) — except in a
 *   replica (its label says so), whose live data nothing mounts: it stays as it is, and the
 *   copy's takeover swaps it to the head then (cluster/handoff.ts activateBranch);
 * - in another volume (an ancestor on the branch's path) it becomes that branch's head only
 *   when it extends it (fast-forward) and it does not come from the branch's master node (a
 *   replica's receive); otherwise it is kept hidden, for lineage only;
 * - a commit already here (hidden) is not received again: it is only made visible if needed
 *   (`skipped`; nothing of the stream was read, and a socket's peer was never told to send).
 *
 * Steps: label with a rollback intent to the new commit (or the commit listed hidden)
 * ─(receive.after-intent)→ stream imported: visible in the pool only once whole and checked
 * ─(receive.after-import)→ stored (held commit, new head; for a new dot its name and master
 * key) → live swapped → label without intent ─(receive.after-label)→. Everything before the
 * store write is undone on failure; recovery redoes a rollback intent whose commit arrived and
 * drops one whose commit did not. A replica has no swap to redo, so no intent: its label is
 * written only when it changes (a commit arriving hidden or deleted), and a commit that arrived
 * whole is its head at the next start whether or not the store write happened (start-up
 * rewrites this node's own keys from the pool).
 */
export async function receiveCommit(
  ctx: ReceiveContext,
  deps: ReceiveDeps,
  caller: Caller,
  c: IncomingCommit,
  input: CommitInput,
): Promise<{ visible: boolean; skipped: boolean }> {
  const v = c.volume;
  const what = `receive into ${v.dot.namespace}/${v.dot.name}`;
  ctx.writeGuard.assertWritable(what);
  incomingDot(ctx, caller, v); // early refusal, before taking the lock
  const known = ctx.index.branches.has(v.fsId);
  const replica = deps.replica === true;
  // Where the time goes (the log line's `ms`): the mutation path's `locks`, `steps`, `store`
  // (the commit is held and listed from its end) and `finish`; applyCommit's `intent`, `import`
  // (the stream received, checked and synced), and in the finish `swap` and `label`.
  const timer = phaseTimer(() => performance.now());
  const result = await ctx.mutations.run(
    {
      op: 'receive',
      what,
      dotId: v.dot.id,
      dotLock: 'exclusive',
      queues: [v.fsId],
      mastered: known && !replica ? [v.fsId] : [],
      timer,
    },
    async (tx) => {
      const dot = incomingDot(ctx, caller, v);
      if (!known && ctx.index.branches.has(v.fsId)) {
        throw new DotmeshError('CONFLICT', `filesystem ${v.fsId} arrived meanwhile`, { hint: 'run the transfer again' });
      }
      const owner = dot ? dot.info.ownerId : await deps.ownerOf(caller, v.dot.namespace);
      const { label: startLabel, created } = await ensureVolume(ctx, tx, v, dot, owner, replica);
      return applyCommit(ctx, tx, c, { label: startLabel, newDot: created && v.branch === MASTER_BRANCH, replica }, input);
    },
  );
  if (!result.skipped) {
    ctx.logger.info({ fsId: v.fsId, commitId: c.commitId, visible: result.visible, ms: timer.totals() }, 'received commit');
  }
  return result;
}

async function applyCommit(
  ctx: ReceiveContext,
  tx: MutationTx,
  c: IncomingCommit,
  start: { readonly label: BranchLabel; readonly newDot: boolean; readonly replica: boolean },
  input: CommitInput,
): Promise<{ visible: boolean; skipped: boolean }> {
  const v = c.volume;
  const startLabel = start.label;
  const nodeId = ctx.mutations.nodeId;
  // Undefined for a volume this mutation creates (its view entry is added after the store write).
  const state = ctx.index.branches.get(v.fsId);
  const head = state ? ctx.index.head(v.fsId) : v.origin;
  const headCount = historyLength(ctx, head);
  const extendsHead = sameRef(head, c.parent);
  const isTarget = v.fsId === c.targetFsId;
  if (isTarget && !extendsHead) {
    throw new DotmeshError(
      'CONFLICT',
      `branch ${v.branch} of ${v.dot.namespace}/${v.dot.name} moved here during the transfer (its head is ${head?.commitId ?? 'none'}, the incoming commit ${c.commitId} follows ${c.parent?.commitId ?? 'nothing'})`,
      { hint: 'run the transfer again' },
    );
  }
  if (c.parent && !ctx.index.findCommit(c.parent)) {
    throw new DotmeshError('COMMIT_NOT_FOUND', `the parent ${c.parent.commitId} of incoming commit ${c.commitId} is not here`);
  }
  // From the branch's master node (replication, a handoff), only the target branch moves: a
  // commit of another volume on its path is kept for lineage. That volume's head is its own
  // master's to set (a fast-forward here could undo a rollback there, or re-show a commit this
  // replica moved to a DIVERGED branch); its own replication makes such commits visible.
  const visible = isTarget || (extendsHead && !start.replica);
  const to = { fsId: v.fsId, commitId: c.commitId };
  const held = state?.commits.find((x) => x.id === c.commitId);
  if (held) {
    // Already here (kept hidden, e.g. after a rollback): make it visible again if it must be.
    if (!visible || !startLabel.hiddenCommits.includes(c.commitId)) return { visible, skipped: true };
    const label: BranchLabel = { ...startLabel, hiddenCommits: startLabel.hiddenCommits.filter((x) => x !== c.commitId) };
    await tx.writeIntent(label, { op: 'rollback', to, opId: tx.newId() }, startLabel);
    tx.storeOps(putBranchState(nodeId, v.fsId, { head: to, commitCount: headCount + 1, active: !start.replica }));
    tx.viewSetLabel(label);
    tx.finish('make a held commit the head', async () => {
      await tx.swapLive(v.fsId, to);
      await tx.rewriteLabel(label);
    });
    return { visible, skipped: true };
  }
  // The live data follows the new head, except in a replica (see above).
  const followLive = visible && startLabel.replica !== true;
  // Only what uses this node's copy blocks, and only when its live data is swapped: a use
  // recorded on another node (the master's mounts, while this node is its replica) is of that
  // node's copy; an attachment to this node does not touch the live data (it is what asks for a
  // handoff here). The check (a scan of /proc) runs while the intent is written and the stream
  // arrives; it is awaited before anything is stored, so a refusal still undoes every pool step
  // and leaves nothing visible.
  const notInUse =
    isTarget && followLive
      ? refuseIfInUse(ctx, v.fsId, `${v.dot.namespace}/${v.dot.name}`, {
          allowed: (use, node) => node !== ctx.mutations.nodeId || use.kind === 'attach',
        })
      : Promise.resolve();
  notInUse.catch(() => {}); // awaited below; a failure before then must not go unhandled
  const shown: BranchLabel = visible ? startLabel : { ...startLabel, hiddenCommits: [...startLabel.hiddenCommits, c.commitId] };
  // A replica receiving a commit its master deleted (one a history still passes through): it
  // arrives deleted, as the master lists it (cluster/tombstones.ts hideDeletedCommit).
  const arrivesDeleted = start.replica && ctx.view.isCommitDeleted(to);
  const finalLabel: BranchLabel = arrivesDeleted
    ? { ...shown, deletedCommits: [...new Set([...(shown.deletedCommits ?? []), c.commitId])] }
    : shown;
  if (followLive) await tx.writeIntent(finalLabel, { op: 'rollback', to, opId: tx.newId() }, startLabel);
  else if (finalLabel !== startLabel) await tx.writeLabel(finalLabel, startLabel);
  tx.mark('intent');
  tx.failpoint('receive.after-intent');
  const info = await tx.importCommit(v.fsId, input, c.parent);
  tx.mark('import');
  await notInUse;
  const meta = parseCommitMeta(info.meta);
  if (info.id !== c.commitId || !sameRef(meta.parent, c.parent)) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `the stream for commit ${c.commitId} held commit ${info.id} with parent ${meta.parent?.commitId ?? 'none'} (expected ${c.parent?.commitId ?? 'none'})`,
    );
  }
  tx.failpoint('receive.after-import');
  const indexed: IndexedCommit = { id: info.id, seq: info.seq, meta };
  tx.storeOps(putHeldCommit(nodeId, v.fsId, indexed));
  if (visible) {
    const commitCount = headCount + (arrivesDeleted ? 0 : 1);
    tx.storeOps(putBranchState(nodeId, v.fsId, { head: to, commitCount, active: !start.replica }));
  }
  if (start.newDot) {
    // The first commit of a dot new here: the dot appears with it (its name, master key, state);
    // a replica only holds it.
    const info0 = finalLabel.dot!;
    if (!start.replica) {
      const claim = claimBranch(nodeId, finalLabel, { head: to, commitCount: 1 });
      tx.storeCompare(absent(KEYS.registry(info0.namespace, info0.name)), ...claim.compare);
      tx.storeOps(putRegistry(v.dot.id, info0), ...claim.ops);
    }
    tx.viewAddDot(v.dot.id, info0);
    tx.viewAddBranch(finalLabel, [indexed]);
  } else {
    tx.viewSetLabel(finalLabel);
    tx.viewAddCommit(v.fsId, indexed);
  }
  tx.finish('receive: live state', async () => {
    if (followLive) {
      await tx.swapLive(v.fsId, to);
      tx.mark('swap');
      await tx.rewriteLabel(finalLabel);
      tx.mark('label');
    }
    tx.failpoint('receive.after-label');
  });
  return { visible, skipped: false };
}

/** Commits in the history that ends at `head` (0 for none). */
function historyLength(ctx: Pick<DotContext, 'index'>, head: CommitOrigin | null): number {
  return ctx.index.listedHistoryFrom(head).length;
}

export function sameRef(a: CommitOrigin | null | undefined, b: CommitOrigin | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.fsId === b.fsId && a.commitId === b.commitId;
}
