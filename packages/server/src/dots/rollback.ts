import { type CommitOrigin, DotmeshError, validateName } from '@dotmesh/core';
import { phaseTimer } from '../phase-timer.ts';
import { type Caller, requireOwner } from './caller.ts';
import { containerMovesKey } from './containers.ts';
import type { DotContext } from './context.ts';
import type { IndexedBranch } from './dot-index.ts';
import type { BranchLabel } from './labels.ts';
import { resolveBranch } from './resolve.ts';

export interface RollbackRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly branch: unknown;
  readonly commitId: unknown;
}

/**
 * Resets a branch's live state and history to a commit of its history (git reset --hard).
 * Commits after it leave the history: they are deleted, or kept hidden while another
 * branch's history still reaches them. Rolling back past the branch's own first commit
 * re-bases it on that earlier commit.
 *
 * Steps (the label is the redo log): label with the new history and a rollback intent
 * ─(rollback.after-intent)→ live swapped atomically by the driver ─(rollback.after-swap)→
 * label without intent ─(rollback.after-label)→ unreachable commits deleted
 * ─(rollback.after-gc)→ store mirror. Recovery redoes the swap for any label that still
 * carries the intent, then collects unreachable hidden commits.
 */
export async function rollbackBranch(ctx: DotContext, caller: Caller, req: RollbackRequest): Promise<void> {
  const target = validateName('commit', req.commitId);
  const { dot, fsId, branch } = resolveBranch(ctx, caller, req.namespace, req.name, req.branch);
  requireOwner(caller, dot.info, 'roll it back');
  ctx.writeGuard.assertWritable(`roll back ${dot.info.namespace}/${dot.info.name}`);
  const dotName = `${dot.info.namespace}/${dot.info.name}`;
  const notInHistory = () =>
    new DotmeshError('COMMIT_NOT_FOUND', `No commit ${target} in the history of branch ${branch} of ${dotName}`, {
      hint: "list commits with 'dm log'",
    });
  // Checked before containers are stopped for it, and again under the lock.
  if (!ctx.index.history(fsId).some((h) => h.commitId === target)) throw notInHistory();
  const phase = phaseTimer();
  // The containers on the branch stop and start again on the same branch: a reset moves none.
  await ctx.queues.run(containerMovesKey(dot.id), () =>
    ctx.containers.whileStopped({ fsId }, `reset ${dotName}`, () =>
      ctx.locks.exclusive(dot.id, () =>
        ctx.queues.run(fsId, async () => {
          phase.mark('containers'); // listed, stopped, and the locks taken
          const entry = ctx.index.history(fsId).find((h) => h.commitId === target);
          if (!entry) throw notInHistory();
          await refuseIfContainersStarted(ctx, fsId, dotName);
          phase.mark('containers');
          await refuseIfInUse(ctx, fsId, dotName);
          phase.mark('inUse');
          const state = ctx.index.requireBranch(fsId);
          const to: CommitOrigin = { fsId: entry.fsId, commitId: target };
          const label = labelResetTo(state, to);
          await ctx.driver.writeLabel(fsId, { ...label, intent: { op: 'rollback', to, opId: ctx.newId() } });
          phase.mark('intent');
          ctx.failpoints.hit('rollback.after-intent');
          await ctx.driver.rollback(fsId, { volumeId: to.fsId, commitId: to.commitId });
          phase.mark('swap');
          ctx.failpoints.hit('rollback.after-swap');
          await ctx.driver.writeLabel(fsId, { ...label });
          state.label = label;
          phase.mark('label');
          ctx.failpoints.hit('rollback.after-label');
          await collectUnreachableCommits(ctx, dot.id);
          ctx.failpoints.hit('rollback.after-gc');
          await ctx.mirror.syncDot(dot.id);
          phase.mark('gcAndStore');
          ctx.logger.info({ fsId, to, ms: phase.totals() }, 'rolled back');
        }),
      ),
    ),
  );
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
  return { ...state.label, origin, hiddenCommits: [...hidden] };
}

/**
 * Deletes hidden commits that no branch of the dot reaches any more. Caller holds the dot
 * lock exclusively. Idempotent: the label is updated after each deletion.
 */
export async function collectUnreachableCommits(ctx: DotContext, dotId: string): Promise<void> {
  const dot = ctx.index.dots.get(dotId);
  if (!dot) return;
  const reachable = ctx.index.reachableCommits();
  for (const fsId of dot.branches.values()) {
    const state = ctx.index.branches.get(fsId);
    if (!state || state.label.hiddenCommits.length === 0) continue;
    const drop = state.label.hiddenCommits.filter((c) => !reachable.has(`${fsId}@${c}`));
    if (drop.length === 0) continue;
    for (const commitId of drop) await ctx.driver.deleteCommit(fsId, commitId);
    const label: BranchLabel = { ...state.label, hiddenCommits: state.label.hiddenCommits.filter((c) => !drop.includes(c)) };
    await ctx.driver.writeLabel(fsId, { ...label });
    state.label = label;
    state.commits = state.commits.filter((c) => !drop.includes(c.id));
    ctx.logger.info({ fsId, commits: drop }, 'deleted commits no branch reaches');
  }
}

/**
 * Under the dot lock, after the containers using the branch were stopped: a container running
 * on it now was started meanwhile, and the live state must not change under it.
 */
async function refuseIfContainersStarted(ctx: DotContext, fsId: string, dotName: string): Promise<void> {
  const started = await ctx.containers.containersFor(fsId);
  if (started.length === 0) return;
  const names = started.map((c) => c.Name).join(', ');
  throw new DotmeshError('IN_USE', `Cannot reset ${dotName}: ${names} started on the branch while it was being reset`, {
    hint: 'try again',
    data: { containers: started },
  });
}

/**
 * Refuses with IN_USE while processes or mounts that Dotmesh cannot stop use the live state
 * (a scan of /proc: containers' processes see their own mount namespace and are not found
 * here; the container tracker stops and starts those).
 */
export async function refuseIfInUse(ctx: DotContext, fsId: string, dotName: string): Promise<void> {
  const report = await ctx.inUse.check(ctx.driver.volumePath(fsId));
  if (report.processes.length === 0 && report.mounts.length === 0) return;
  const who = [...report.processes.map((p) => `process ${p.pid} (${p.command})`), ...report.mounts.map((m) => `mount ${m}`)];
  throw new DotmeshError('IN_USE', `${dotName} is in use: ${who.slice(0, 10).join(', ')}${who.length > 10 ? ', …' : ''}`, {
    hint: 'stop those processes or unmount those paths, then try again',
    data: { processes: report.processes, mounts: report.mounts },
  });
}
