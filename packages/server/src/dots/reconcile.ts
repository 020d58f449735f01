import type { CommitInfo } from '@dotmesh/storage';
import type { DotContext } from './context.ts';
import { finishDelete } from './create-delete.ts';
import type { IndexedCommit } from './dot-index.ts';
import { type BranchLabel, parseCommitMeta, parseLabel } from './labels.ts';
import { collectUnreachableCommits } from './rollback.ts';

/**
 * Start-up recovery: rebuilds the index from the pool (authoritative), finishes or drops
 * half-done work, then makes the store's mirror match, logging every change. Runs before
 * the server accepts requests, so it needs no locks.
 *
 * Rules (docs/on-disk-format.md):
 * - a master label with a delete intent: finish the delete (branches, then master);
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

export async function reconcileFromPool(ctx: DotContext): Promise<ReconcileReport> {
  const actions: string[] = [];
  const note = (msg: string, data: Record<string, unknown> = {}) => {
    actions.push(msg);
    ctx.logger.info({ ...data, reconcile: true }, msg);
  };
  const labels = new Map<string, BranchLabel>();
  for (const v of await ctx.driver.listVolumes()) {
    const parsed = parseLabel(v.label, v.id);
    if (typeof parsed === 'string') {
      note(`ignored volume ${v.id}: ${parsed}`, { fsId: v.id });
      continue;
    }
    labels.set(v.id, parsed);
  }

  // Finish deletes first: a dot being deleted takes its branches with it.
  for (const label of [...labels.values()]) {
    if (label.intent?.op !== 'delete') continue;
    const fsIds = [...labels.values()].filter((l) => l.dotId === label.dotId).map((l) => l.fsId);
    await finishDelete(ctx, label.dotId, fsIds);
    for (const id of fsIds) labels.delete(id);
    note(`finished interrupted delete of dot ${label.dot?.namespace}/${label.dot?.name} (${label.dotId})`, {
      dotId: label.dotId,
    });
  }

  // Commits of every volume.
  const commits = new Map<string, CommitInfo[]>();
  for (const fsId of labels.keys()) commits.set(fsId, await ctx.driver.listCommits(fsId));

  // Masters: drop half-created ones, resolve name clashes, index the rest.
  const masters = [...labels.values()]
    .filter((l) => l.branch === 'master')
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  for (const label of masters) {
    if ((commits.get(label.fsId) ?? []).length === 0) {
      await ctx.driver.deleteVolume(label.fsId);
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
      await ctx.driver.writeLabel(label.fsId, { ...renamed });
      labels.set(label.fsId, renamed);
      note(`renamed dot ${label.dot!.namespace}/${label.dot!.name} (${label.fsId}) to ${info.name}: the name was taken`, {
        dotId: label.fsId,
      });
    }
    ctx.index.addDot(label.fsId, info);
  }

  // Branches (the master's own entry included).
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
      await ctx.driver.writeLabel(label.fsId, { ...label });
    }
    const indexed: IndexedCommit[] = (commits.get(label.fsId) ?? []).map((c) => ({
      id: c.id,
      seq: c.seq,
      meta: parseCommitMeta(c.meta),
    }));
    ctx.index.addBranch(label, indexed);
  }

  // Redo interrupted rollbacks.
  for (const [fsId, state] of ctx.index.branches) {
    const intent = state.label.intent;
    if (intent?.op !== 'rollback') continue;
    const { intent: _done, ...rest } = state.label;
    if (ctx.index.findCommit(intent.to)) {
      await ctx.driver.rollback(fsId, { volumeId: intent.to.fsId, commitId: intent.to.commitId });
      note(`finished interrupted rollback of ${fsId} to ${intent.to.commitId}`, { fsId });
    } else {
      // An incoming commit that never arrived whole (transfer/receive-commit.ts): nothing to redo.
      note(`dropped the intent of an interrupted receive of ${intent.to.commitId} into ${fsId}`, { fsId });
    }
    state.label = rest as BranchLabel;
    await ctx.driver.writeLabel(fsId, { ...state.label });
  }

  for (const dotId of ctx.index.dots.keys()) await collectUnreachableCommits(ctx, dotId);

  const diff = await ctx.mirror.rebuild();
  for (const key of diff.added) note(`store: adopted ${key} from the pool`);
  for (const key of diff.removed) note(`store: dropped ${key} (not in the pool)`);
  return { actions };
}

function recoveredName(name: string, fsId: string): string {
  return `${name.slice(0, 40)}-RECOVERED-${fsId.slice(0, 8)}`;
}
