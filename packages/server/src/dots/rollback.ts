import { type CommitOrigin, DotmeshError, MASTER_BRANCH, phaseTimer, validateName } from '@dotmesh/core';
import { refuseIfPublished } from '../cluster/publications.ts';
import type { BranchUse } from '../cluster/store-keys.ts';
import { type Caller, requireOwner } from './caller.ts';
import { collectUnreachableCommits } from './collect.ts';
import { containerMovesKey } from './containers.ts';
import type { DotContext } from './context.ts';
import type { IndexedBranch } from './dot-index.ts';
import type { BranchLabel } from './labels.ts';
import { putBranchState, putClone } from './mutation/store-writes.ts';
import type { MutationTx } from './mutation/tx.ts';
import { resolveBranch } from './resolve.ts';

export interface RollbackRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly branch: unknown;
  readonly commitId: unknown;
}

export type RollbackDeps = Pick<
  DotContext,
  'index' | 'mutations' | 'storage' | 'containers' | 'containerMoves' | 'inUse' | 'publications' | 'writeGuard' | 'logger'
>;

/**
 * Resets a branch's live state and history to a commit of its history (git reset --hard).
 * Commits after it leave the history: they are deleted, or kept hidden while another
 * branch's history still reaches them. Rolling back past the branch's own first commit
 * re-bases it on that earlier commit.
 *
 * Steps (the label is the redo log): label with the new history and a rollback intent
 * (undone if the store write fails) ─(rollback.after-intent)→ stored: the branch's new head,
 * fenced on the master key ─(rollback.after-store)→ live swapped atomically by the driver
 * ─(rollback.after-swap)→ label without intent ─(rollback.after-label)→ unreachable commits
 * deleted ─(rollback.after-gc)→. Recovery redoes the swap for any label that still carries the
 * intent, then collects unreachable hidden commits.
 */
export async function rollbackBranch(ctx: RollbackDeps, caller: Caller, req: RollbackRequest): Promise<void> {
  const target = validateName('commit', req.commitId);
  const { dot, fsId, branch } = resolveBranch(ctx, caller, req.namespace, req.name, req.branch);
  requireOwner(caller, dot.info, 'roll it back');
  const dotName = `${dot.info.namespace}/${dot.info.name}`;
  const what = `roll back ${dotName}`;
  ctx.writeGuard.assertWritable(what);
  const notInHistory = () =>
    new DotmeshError('COMMIT_NOT_FOUND', `No commit ${target} in the history of branch ${branch} of ${dotName}`, {
      hint: "list commits with 'dm log'",
    });
  // A deleted commit (DeleteCommit) is no rollback target, even while the history passes through it.
  const inHistory = () => ctx.index.listedHistory(fsId).some((h) => h.commitId === target);
  // Checked before containers are stopped for it, and again under the lock.
  if (!inHistory()) throw notInHistory();
  const phase = phaseTimer(() => performance.now());
  // The containers on the branch stop and start again on the same branch: a reset moves none.
  await ctx.containerMoves.run(containerMovesKey(dot.id), () =>
    ctx.containers.whileStopped({ fsId }, `reset ${dotName}`, () =>
      ctx.mutations.run(
        { op: 'rollback', what, dotId: dot.id, dotLock: 'exclusive', queues: [fsId], mastered: [fsId], timer: phase },
        async (tx) => {
          const history = ctx.index.history(fsId);
          const at = history.findIndex((h) => h.commitId === target);
          if (at < 0 || !inHistory()) throw notInHistory();
          await refuseIfContainersStarted(ctx, fsId, dotName);
          tx.mark('containers');
          await refuseIfInUse(ctx, fsId, dotName);
          // Fenced: a Kubernetes use registered meanwhile fails the reset.
          const uses = await ctx.publications.read(fsId);
          refuseIfPublished({ of: () => uses.record }, fsId, `${dotName} is in use`);
          tx.storeCompare(uses.fence);
          tx.mark('inUse');
          const state = ctx.index.requireBranch(fsId);
          const to: CommitOrigin = { fsId: history[at]!.fsId, commitId: target };
          await resetBranchTo(ctx, tx, state, to, {
            commitCount: ctx.index.listedHistoryFrom(to).length,
            failpoints: 'rollback',
          });
          tx.finish('collect unreachable commits', async () => {
            await collectUnreachableCommits(ctx, tx, dot.id);
            tx.failpoint('rollback.after-gc');
          });
        },
      ),
    ),
  );
  ctx.logger.info({ fsId, to: target, ms: phase.totals() }, 'rolled back');
}

/**
 * The steps that move a branch's history and live state back to `to` (a commit of its
 * history; null: before its first own commit, keeping its origin and live state), shared by
 * rollback, stash and receive: intent label (undoable) ─(<fp>.after-intent)→ new head stored
 * ─(<fp>.after-store)→ swap ─(<fp>.after-swap)→ label without intent ─(<fp>.after-label)→.
 */
export async function resetBranchTo(
  ctx: Pick<DotContext, 'mutations'>,
  tx: MutationTx,
  state: IndexedBranch,
  to: CommitOrigin | null,
  o: { readonly commitCount: number; readonly failpoints: 'rollback' | 'stash' },
): Promise<void> {
  const fsId = state.label.fsId;
  const label = labelResetTo(state, to);
  if (to) await tx.writeIntent(label, { op: 'rollback', to, opId: tx.newId() }, state.label);
  else await tx.writeLabel(label, state.label);
  if (o.failpoints === 'rollback') tx.failpoint('rollback.after-intent');
  // A replica (stashing what the master dropped, before it receives the master's history)
  // stays inactive and leaves the branch's cluster-wide records to its master.
  const replica = state.label.replica === true;
  tx.storeOps(
    putBranchState(ctx.mutations.nodeId, fsId, {
      head: to ?? state.label.origin,
      commitCount: o.commitCount,
      active: !replica,
    }),
  );
  // Re-based on an earlier commit: the branch's clone record names its new origin.
  if (!replica && label.branch !== MASTER_BRANCH && !sameOrigin(label.origin, state.label.origin)) tx.storeOps(putClone(label));
  tx.viewSetLabel(label);
  if (!to) return;
  tx.finish('swap live data', async () => {
    if (o.failpoints === 'rollback') tx.failpoint('rollback.after-store');
    await tx.swapLive(fsId, to);
    if (o.failpoints === 'rollback') tx.failpoint('rollback.after-swap');
    await tx.rewriteLabel(label);
    if (o.failpoints === 'rollback') tx.failpoint('rollback.after-label');
  });
}

function sameOrigin(a: CommitOrigin | null, b: CommitOrigin | null): boolean {
  return a?.fsId === b?.fsId && a?.commitId === b?.commitId;
}

/**
 * A branch's label once its history ends at `to` (a commit of its history; null: before its
 * first own commit, keeping its origin): its own commits after `to` — all of them when `to` is
 * not its own — become hidden, and a `to` in another volume becomes its origin.
 */
export function labelResetTo(state: IndexedBranch, to: CommitOrigin | null): BranchLabel {
  const hidden = new Set(state.label.hiddenCommits);
  let origin = state.label.origin;
  if (to && to.fsId === state.label.fsId) {
    const seq = state.commits.find((c) => c.id === to.commitId)!.seq;
    for (const c of state.commits) if (c.seq > seq) hidden.add(c.id);
  } else {
    for (const c of state.commits) hidden.add(c.id);
    if (to) origin = to;
  }
  const { intent: _none, ...rest } = state.label;
  return { ...rest, origin, hiddenCommits: [...hidden] };
}

/**
 * Under the dot lock, after the containers using the branch were stopped: a container running
 * on it now was started meanwhile, and the live state must not change under it.
 */
async function refuseIfContainersStarted(ctx: Pick<DotContext, 'containers'>, fsId: string, dotName: string): Promise<void> {
  const started = await ctx.containers.containersFor(fsId);
  if (started.length === 0) return;
  const names = started.map((c) => c.Name).join(', ');
  throw new DotmeshError('IN_USE', `Cannot reset ${dotName}: ${names} started on the branch while it was being reset`, {
    hint: 'try again',
    data: { containers: started },
  });
}

/**
 * Refuses with IN_USE while anything Dotmesh cannot stop uses the live state: a Kubernetes
 * attachment or mount (BranchPublications; the uses `o.allowed` accepts do not count), processes
 * or mounts (a scan of /proc: containers' processes see their own mount namespace and are not
 * found here; the container tracker stops and starts those).
 */
export async function refuseIfInUse(
  ctx: Pick<DotContext, 'inUse' | 'storage' | 'publications'>,
  fsId: string,
  dotName: string,
  o: { readonly allowed?: (use: BranchUse, node: string) => boolean } = {},
): Promise<void> {
  const record = ctx.publications.of(fsId);
  const blocking = record?.uses.filter((u) => !o.allowed?.(u, record.node_id)) ?? [];
  if (record && blocking.length > 0)
    refuseIfPublished({ of: () => ({ ...record, uses: blocking }) }, fsId, `${dotName} is in use`);
  const report = await ctx.inUse.check(ctx.storage.volumePath(fsId));
  if (report.processes.length === 0 && report.mounts.length === 0) return;
  const who = [...report.processes.map((p) => `process ${p.pid} (${p.command})`), ...report.mounts.map((m) => `mount ${m}`)];
  throw new DotmeshError('IN_USE', `${dotName} is in use: ${who.slice(0, 10).join(', ')}${who.length > 10 ? ', …' : ''}`, {
    hint: 'stop those processes or unmount those paths, then try again',
    data: { processes: report.processes, mounts: report.mounts },
  });
}
