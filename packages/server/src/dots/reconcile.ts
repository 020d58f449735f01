import type { CommitInfo } from '@dotmesh/storage';
import type { Store } from '@dotmesh/store';
import { collectUnreachableCommits } from './collect.ts';
import type { DotContext } from './context.ts';
import type { IndexedCommit } from './dot-index.ts';
import { type BranchLabel, parseCommitMeta, parseLabel } from './labels.ts';
import type { MutationTx } from './mutation/tx.ts';
import { publishFromPool } from './reconcile-store.ts';

/**
 * Start-up recovery: rebuilds the index from the pool (authoritative for what it holds),
 * finishes or drops half-done work, then brings the store in line (reconcile-store.ts),
 * logging every change. Runs before the server accepts requests, so it needs no locks.
 *
 * Rules (docs/on-disk-format.md):
 * - a master label with a delete intent: finish the delete (store, branches, then master);
 * - a label with a rollback intent: redo the live swap, clear the intent (an intent whose
 *   commit is absent — an incoming commit that never arrived whole — is only cleared);
 * - a master volume without any commit: a half-done create, dropped;
 * - a branch whose dot is gone: left alone and reported (never delete what we don't know);
 * - a name used twice: the younger one is renamed `<name>-RECOVERED-<id prefix>`;
 * - hidden commits no branch reaches: deleted.
 */
export interface ReconcileReport {
  readonly actions: string[];
}

export type ReconcileContext = Pick<DotContext, 'index' | 'storage' | 'mutations' | 'masterNodes' | 'logger' | 'now'>;

export async function reconcileFromPool(ctx: ReconcileContext, store: Store): Promise<ReconcileReport> {
  const actions: string[] = [];
  const note = (msg: string, data: Record<string, unknown> = {}) => {
    actions.push(msg);
    ctx.logger.info({ ...data, reconcile: true }, msg);
  };
  const deletedDots = await ctx.mutations.recover(async (tx) => {
    const labels = await readLabels(ctx, note);
    const deleted = await finishDeletes(tx, labels, note);
    await indexPool(ctx, tx, labels, note);
    await redoRollbacks(ctx, tx, note);
    for (const dotId of ctx.index.dots.keys()) await collectUnreachableCommits(ctx, tx, dotId);
    return deleted;
  });
  await ctx.mutations.recover((tx) => publishFromPool(ctx, tx, store, { deletedDots, note }));
  return { actions };
}

async function readLabels(ctx: ReconcileContext, note: (msg: string, data?: Record<string, unknown>) => void) {
  const labels = new Map<string, BranchLabel>();
  for (const v of await ctx.storage.listVolumes()) {
    const parsed = parseLabel(v.label, v.id);
    if (typeof parsed === 'string') {
      note(`ignored volume ${v.id}: ${parsed}`, { fsId: v.id });
      continue;
    }
    labels.set(v.id, parsed);
  }
  return labels;
}

/** Finishes deletes first: a dot being deleted takes its branches with it. Returns the dots. */
async function finishDeletes(
  tx: MutationTx,
  labels: Map<string, BranchLabel>,
  note: (msg: string, data?: Record<string, unknown>) => void,
): Promise<Array<{ label: BranchLabel; fsIds: string[] }>> {
  const deleted: Array<{ label: BranchLabel; fsIds: string[] }> = [];
  for (const label of [...labels.values()]) {
    if (label.intent?.op !== 'delete') continue;
    const fsIds = [...labels.values()].filter((l) => l.dotId === label.dotId).map((l) => l.fsId);
    for (const fsId of fsIds) if (fsId !== label.dotId) await tx.destroyVolume(fsId);
    await tx.destroyVolume(label.dotId);
    for (const id of fsIds) labels.delete(id);
    deleted.push({ label, fsIds });
    note(`finished interrupted delete of dot ${label.dot?.namespace}/${label.dot?.name} (${label.dotId})`, {
      dotId: label.dotId,
    });
  }
  return deleted;
}

/** Masters (dropping half-created ones, renaming clashes), then every branch, into the index. */
async function indexPool(
  ctx: ReconcileContext,
  tx: MutationTx,
  labels: Map<string, BranchLabel>,
  note: (msg: string, data?: Record<string, unknown>) => void,
): Promise<void> {
  const commits = new Map<string, CommitInfo[]>();
  for (const fsId of labels.keys()) commits.set(fsId, await ctx.storage.listCommits(fsId));

  const masterNodes = [...labels.values()]
    .filter((l) => l.branch === 'master')
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  for (const label of masterNodes) {
    if ((commits.get(label.fsId) ?? []).length === 0) {
      await tx.destroyVolume(label.fsId);
      labels.delete(label.fsId);
      note(`dropped half-created dot ${label.dot!.namespace}/${label.dot!.name} (${label.fsId}): it has no initial commit`, {
        dotId: label.fsId,
      });
      continue;
    }
    let info = label.dot!;
    if (ctx.index.dotIdByName(info.namespace, info.name) !== undefined) {
      info = { ...info, name: recoveredName(info.name, label.fsId) };
      const renamed: BranchLabel = { ...label, dot: info };
      await tx.rewriteLabel(renamed);
      labels.set(label.fsId, renamed);
      note(`renamed dot ${label.dot!.namespace}/${label.dot!.name} (${label.fsId}) to ${info.name}: the name was taken`, {
        dotId: label.fsId,
      });
    }
    ctx.index.addDot(label.fsId, info);
  }

  for (let label of labels.values()) {
    const dot = ctx.index.dots.get(label.dotId);
    if (!dot) {
      note(`left orphan branch volume ${label.fsId} (${label.branch}) alone: its dot ${label.dotId} is not in the pool`, {
        fsId: label.fsId,
      });
      continue;
    }
    if (label.branch !== 'master' && dot.branches.has(label.branch)) {
      const name = recoveredName(label.branch, label.fsId);
      note(
        `renamed branch ${label.branch} (${label.fsId}) of ${dot.info.namespace}/${dot.info.name} to ${name}: the name was taken`,
      );
      label = { ...label, branch: name };
      await tx.rewriteLabel(label);
    }
    const indexed: IndexedCommit[] = (commits.get(label.fsId) ?? []).map((c) => ({
      id: c.id,
      seq: c.seq,
      meta: parseCommitMeta(c.meta),
    }));
    ctx.index.addBranch(label, indexed);
  }
}

/** Redoes the live swap of every label that still carries a rollback intent, then clears it. */
async function redoRollbacks(
  ctx: ReconcileContext,
  tx: MutationTx,
  note: (msg: string, data?: Record<string, unknown>) => void,
): Promise<void> {
  for (const [fsId, state] of ctx.index.branches) {
    const intent = state.label.intent;
    if (intent?.op !== 'rollback') continue;
    const { intent: _done, ...rest } = state.label;
    if (ctx.index.findCommit(intent.to)) {
      await tx.swapLive(fsId, intent.to);
      note(`finished interrupted rollback of ${fsId} to ${intent.to.commitId}`, { fsId });
    } else {
      // An incoming commit that never arrived whole (transfer/receive-commit.ts): nothing to redo.
      note(`dropped the intent of an interrupted receive of ${intent.to.commitId} into ${fsId}`, { fsId });
    }
    const label = rest as BranchLabel;
    await tx.rewriteLabel(label);
    ctx.index.setLabel(label);
  }
}

export function recoveredName(name: string, fsId: string): string {
  return `${name.slice(0, 40)}-RECOVERED-${fsId.slice(0, 8)}`;
}
