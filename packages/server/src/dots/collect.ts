import { type CommitOrigin, isRetained } from '@dotmesh/core';
import type { DotContext } from './context.ts';
import type { DotIndex } from './dot-index.ts';
import type { BranchLabel } from './labels.ts';
import type { MutationTx } from './mutation/tx.ts';

/**
 * What nothing needs any more in a dot, once a mutation has changed some labels (`labels`
 * replaces the index's label of those volumes; volumes in `removed` are gone).
 *
 * - **Roots**: the head of every branch that is not retired, and every retained commit
 *   (metadata `retain=true`) that is not deleted (`label.deletedCommits`).
 * - **Needed**: every commit a root's history passes through (parent links, across branches
 *   and dots).
 * - **Collectable**: the hidden own commits of a live branch, and every own commit of a
 *   retired branch, that are not needed. A retired branch left without commits goes too.
 */
export interface CollectionPlan {
  /** fsId → own commits to delete. */
  readonly commits: ReadonlyMap<string, readonly string[]>;
  /** Retired volumes of the dot that keep no commit: destroyed. */
  readonly emptyRetired: readonly string[];
}

export function planCollection(
  index: DotIndex,
  dotId: string,
  o: { readonly labels?: ReadonlyMap<string, BranchLabel>; readonly removed?: ReadonlySet<string> } = {},
): CollectionPlan {
  const labelOf = (fsId: string) => o.labels?.get(fsId) ?? index.branches.get(fsId)?.label;
  const present = (fsId: string) => !o.removed?.has(fsId) && index.branches.has(fsId);
  const needed = new Set<string>();
  const follow = (from: CommitOrigin | null) => {
    let ref = from;
    while (ref && present(ref.fsId)) {
      const key = `${ref.fsId}@${ref.commitId}`;
      if (needed.has(key)) return;
      const commit = index.findCommit(ref);
      if (!commit) return;
      needed.add(key);
      ref = commit.meta.parent;
    }
  };
  for (const [fsId, branch] of index.branches) {
    if (!present(fsId)) continue;
    const label = labelOf(fsId)!;
    if (label.retired === undefined) follow(headOf(label, branch.commits));
    const deleted = new Set(label.deletedCommits ?? []);
    for (const c of branch.commits) {
      if (isRetained(c.meta.metadata) && !deleted.has(c.id)) follow({ fsId, commitId: c.id });
    }
  }
  const commits = new Map<string, string[]>();
  const emptyRetired: string[] = [];
  for (const fsId of index.dots.get(dotId)?.branches.values() ?? []) {
    if (!present(fsId)) continue;
    const label = labelOf(fsId)!;
    const own = index.branches.get(fsId)!.commits.map((c) => c.id);
    const candidates = label.retired !== undefined ? own : label.hiddenCommits;
    const drop = candidates.filter((c) => !needed.has(`${fsId}@${c}`));
    if (label.retired !== undefined && drop.length === own.length) emptyRetired.push(fsId);
    else if (drop.length > 0) commits.set(fsId, drop);
  }
  return { commits, emptyRetired };
}

/** The newest own commit `label` does not hide, else its origin (as DotIndex.head, for any label). */
export function headOf(label: BranchLabel, commits: ReadonlyArray<{ readonly id: string }>): CommitOrigin | null {
  const hidden = new Set(label.hiddenCommits);
  for (let i = commits.length - 1; i >= 0; i--) {
    const c = commits[i]!;
    if (!hidden.has(c.id)) return { fsId: label.fsId, commitId: c.id };
  }
  return label.origin;
}

/**
 * Deletes the commits of a dot that nothing needs (planCollection), as a finishing step of a
 * mutation holding the dot lock exclusively (or of start-up recovery). Idempotent: each
 * volume's label is rewritten after its deletions; the held-commit keys follow. Retired volumes
 * left empty stay until a delete plans them (they need a store transaction to go).
 */
export async function collectUnreachableCommits(
  ctx: Pick<DotContext, 'index' | 'logger'>,
  tx: MutationTx,
  dotId: string,
): Promise<void> {
  const plan = planCollection(ctx.index, dotId);
  for (const [fsId, drop] of plan.commits) await dropCommits(ctx, tx, fsId, drop);
}

/** Deletes own commits of a volume, then rewrites its label without them (finishing step). */
export async function dropCommits(
  ctx: Pick<DotContext, 'index' | 'logger'>,
  tx: MutationTx,
  fsId: string,
  drop: readonly string[],
): Promise<void> {
  const state = ctx.index.branches.get(fsId);
  if (!state || drop.length === 0) return;
  for (const commitId of drop) await tx.dropCommit(fsId, commitId);
  const gone = new Set(drop);
  const label: BranchLabel = {
    ...state.label,
    hiddenCommits: state.label.hiddenCommits.filter((c) => !gone.has(c)),
    ...(state.label.deletedCommits ? { deletedCommits: state.label.deletedCommits.filter((c) => !gone.has(c)) } : {}),
  };
  await tx.rewriteLabel(label);
  await tx.dropHeld(label, drop);
  ctx.logger.info({ fsId, commits: drop }, 'deleted commits nothing needs');
}
