import { ADMIN_USER_ID, DotmeshError, phaseTimer } from '@dotmesh/core';
import type { Caller } from '../dots/caller.ts';
import { commitBranch } from '../dots/commit.ts';
import type { DotContext } from '../dots/context.ts';
import { putBranchState, putMaster } from '../dots/mutation/store-writes.ts';
import { refuseIfInUse } from '../dots/rollback.ts';
import { standDown } from './come-back.ts';
import { requireLiveNode } from './node-send.ts';
import { refuseIfPublished } from './publications.ts';
import type { PublicationsRecord } from './store-keys.ts';

/** Who writes the migration commit of a handoff (the original's `system`). */
const SYSTEM: Caller = { id: ADMIN_USER_ID, name: 'system', authMethod: 'internal' };

export type HandoffContext = Pick<
  DotContext,
  | 'index'
  | 'view'
  | 'storage'
  | 'mutations'
  | 'masterNodes'
  | 'containers'
  | 'publications'
  | 'inUse'
  | 'failpoints'
  | 'writeGuard'
  | 'logger'
  | 'nodeId'
  | 'now'
  | 'newId'
>;

export interface HandoffDeps {
  readonly ctx: HandoffContext;
  /**
   * Makes node `to` hold every commit of branch `fsId`'s history, into its replica: the
   * replicator's sendNow (one transfer per branch and node at a time, background ones included).
   */
  readonly send: (dotId: string, fsId: string, to: string) => Promise<void>;
}

/**
 * Runs on the master node of branch `fsId` (MoveBranch): hands the branch to node `to`.
 *
 * 1. Refused (IN_USE) while anything uses the branch here: containers, processes, mounts.
 * 2. Uncommitted data is committed (`type: migration`, author `system`) ─(handoff.after-commit)→
 * 3. `to` is sent every commit of the branch's history it lacks, into its replica (the same
 *    transfer engine as push and pull) ─(handoff.after-send)→
 * 4. One mutation, fenced on this node's mastership: nothing used or wrote the branch meanwhile
 *    and its head is still the one sent; the master key moves to `to` by compare-and-swap and
 *    this node's copy turns inactive ─(handoff.after-move)→
 *
 * Until step 4 this node is the master and nothing changed; after it `to` is (it activates the
 * branch when it sees the key, see activateBranch). So a handoff cut anywhere leaves exactly one
 * master, and every committed commit on it. Returns the store revision of the move.
 */
export async function handOff(deps: HandoffDeps, fsId: string, to: string): Promise<number> {
  const { ctx } = deps;
  const what = `move branch ${fsId} to node ${to}`;
  if (to === ctx.nodeId) return ctx.masterNodes.requireMine(fsId, what).revision;
  ctx.masterNodes.requireMine(fsId, what);
  requireLiveNode(ctx.view, to, what);
  const branch = ctx.index.requireBranch(fsId);
  const dot = ctx.index.dots.get(branch.label.dotId);
  if (!dot) throw new DotmeshError('DOT_NOT_FOUND', `No dot for filesystem id '${fsId}'`);
  const dotName = `${dot.info.namespace}/${dot.info.name}`;
  const phase = phaseTimer(() => performance.now());
  await refuseInUse(ctx, fsId, dotName, to);
  phase.mark('inUse');
  if ((await ctx.storage.sizes([fsId], { referenced: false })).get(fsId)?.dirty) {
    await commitBranch(ctx, SYSTEM, {
      namespace: dot.info.namespace,
      name: dot.info.name,
      branch: branch.label.branch,
      message: `Automatic snapshot during migration from ${ctx.nodeId} to ${to}.`,
      metadata: { type: 'migration' },
    });
  }
  phase.mark('commit');
  ctx.failpoints.hit('handoff.after-commit');
  const head = ctx.index.head(fsId);
  await deps.send(dot.id, fsId, to);
  phase.mark('send');
  ctx.failpoints.hit('handoff.after-send');
  await ctx.mutations.run(
    { op: 'mastership', what, dotId: dot.id, dotLock: 'exclusive', queues: [fsId], mastered: [fsId], evenWhenFull: true },
    async (tx) => {
      await refuseInUse(ctx, fsId, dotName, to);
      // Fenced: a use registered meanwhile fails the move.
      const uses = await ctx.publications.read(fsId);
      refusePublishedAway(uses.record, fsId, dotName, to);
      tx.storeCompare(uses.fence);
      const now = ctx.index.head(fsId);
      const dirty = (await ctx.storage.sizes([fsId], { referenced: false })).get(fsId)?.dirty === true;
      if (dirty || now?.commitId !== head?.commitId || now?.fsId !== head?.fsId) {
        throw new DotmeshError('CONFLICT', `cannot ${what}: ${dotName} was written to while it was being moved`, {
          hint: 'stop what writes to it, then try again',
        });
      }
      // This copy becomes a replica: should the store be lost, it claims nothing.
      const state = ctx.index.requireBranch(fsId);
      const label = { ...state.label, replica: true };
      await tx.writeLabel(label, state.label);
      tx.viewSetLabel(label);
      tx.storeOps(
        putMaster(fsId, to),
        putBranchState(ctx.nodeId, fsId, { head: now, commitCount: ctx.index.listedHistory(fsId).length, active: false }),
      );
      tx.finish('handoff.after-move', async () => tx.failpoint('handoff.after-move'));
    },
  );
  phase.mark('move');
  ctx.logger.info({ fsId, from: ctx.nodeId, to, head: head?.commitId, ms: phase.totals() }, 'handed a branch to another node');
  return ctx.masterNodes.get(fsId)?.revision ?? 0;
}

/**
 * On the node a branch was handed to (or forced to): once the store names it master, it takes
 * the branch over. Its copy is advertised active ─(takeover.after-store)→ a replica's live state
 * becomes the head of the history it holds ─(takeover.after-swap)→ its label stops saying
 * replica. Idempotent; a no-op when it does not master or hold the branch, or already took it
 * over. A copy that is not a replica keeps its live data (it may hold uncommitted changes).
 */
export async function activateBranch(ctx: HandoffContext, fsId: string): Promise<void> {
  const state = ctx.index.branches.get(fsId);
  if (!state || !ctx.masterNodes.isMine(fsId)) return;
  if (ctx.view.copiesOf(fsId).get(ctx.nodeId)?.state.state === 'active' && state.label.replica !== true) return;
  const tookOver = await ctx.mutations.run(
    {
      op: 'mastership',
      what: `take over branch ${fsId}`,
      dotId: state.label.dotId,
      dotLock: 'exclusive',
      queues: [fsId],
      mastered: [fsId],
      evenWhenFull: true,
    },
    async (tx) => {
      const current = ctx.index.requireBranch(fsId).label;
      // Checked again under the lock: followMastership and the handoff's own call both get here.
      if (ctx.view.copiesOf(fsId).get(ctx.nodeId)?.state.state === 'active' && current.replica !== true) return false;
      const head = ctx.index.head(fsId);
      tx.storeOps(putBranchState(ctx.nodeId, fsId, { head, commitCount: ctx.index.listedHistory(fsId).length, active: true }));
      if (current.replica !== true) return true; // this node's own live data: only its state key was missing
      // A replica: its live data becomes the head, then the label stops saying replica. Until
      // that last step the pool still says replica, so a crash anywhere here takes over again
      // at the next start (followMastership), and the swap is repeated.
      const { replica: _was, ...label } = current;
      tx.viewSetLabel(label);
      tx.finish('the live state follows the head', async () => {
        tx.failpoint('takeover.after-store');
        if (head) await tx.swapLive(fsId, head);
        tx.failpoint('takeover.after-swap');
        await tx.rewriteLabel(label);
      });
      return true;
    },
  );
  if (tookOver) ctx.logger.info({ fsId }, 'took over a branch: this node is its master now');
}

/**
 * Follows the master keys: a branch handed (or forced) to this node is taken over as soon as
 * the store says so, whoever started the move and whether or not they are still there. At
 * start it first settles what the store says already: a branch whose key names this node is
 * taken over (a node killed after a handoff moved the key to it, before it took over), and this
 * node's copy of a branch another node masters becomes a replica.
 */
export function followMastership(ctx: HandoffContext): () => void {
  const follow = (fsId: string, step: (ctx: HandoffContext, fsId: string) => Promise<unknown>) =>
    void step(ctx, fsId).catch((err: unknown) =>
      ctx.logger.warn({ err, fsId }, 'could not follow a change of a branch’s master'),
    );
  const unsubscribe = ctx.view.onChange((change) => {
    if (change.kind !== 'master' || !ctx.index.branches.has(change.fsId)) return;
    follow(change.fsId, ctx.masterNodes.isMine(change.fsId) ? activateBranch : standDown);
  });
  for (const fsId of ctx.index.branches.keys()) {
    const master = ctx.masterNodes.get(fsId)?.nodeId;
    if (master === undefined) continue;
    follow(fsId, master === ctx.nodeId ? activateBranch : standDown);
  }
  return unsubscribe;
}

/**
 * Refuses a move while containers, processes or mounts use the branch here, or it is published
 * (Kubernetes) on a node other than `to` (an attachment to `to` is what asks for the move).
 */
async function refuseInUse(ctx: HandoffContext, fsId: string, dotName: string, to: string): Promise<void> {
  refusePublishedAway(ctx.publications.of(fsId), fsId, dotName, to);
  const containers = await ctx.containers.containersFor(fsId);
  if (containers.length > 0) {
    throw new DotmeshError(
      'IN_USE',
      `cannot move ${dotName} to node ${to} while containers are running on it here: ${containers.map((c) => c.Name).join(', ')}`,
      { hint: 'stop the containers first', data: { containers: containers.map((c) => c.Name), node: ctx.nodeId } },
    );
  }
  await refuseIfInUse(ctx, fsId, dotName, { allowed: (_use, node) => node === to });
}

function refusePublishedAway(record: PublicationsRecord | undefined, fsId: string, dotName: string, to: string): void {
  if (!record || record.node_id === to) return;
  refuseIfPublished({ of: () => record }, fsId, `cannot move ${dotName} to node ${to}`);
}
