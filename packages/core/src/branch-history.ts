import type { CommitOrigin } from './types.ts';

/**
 * How a branch's history is read from the commits a pool (or a peer's description of one)
 * holds: the same rules for the server's index and for the transfer engine's view of a peer.
 */

/** The newest commit of a branch: its newest own commit not hidden, else its origin. */
export function branchHead(
  fsId: string,
  commits: readonly { readonly id: string }[],
  hidden: readonly string[],
  origin: CommitOrigin | null,
): CommitOrigin | null {
  const hiddenIds = new Set(hidden);
  for (let i = commits.length - 1; i >= 0; i--) {
    const c = commits[i]!;
    if (!hiddenIds.has(c.id)) return { fsId, commitId: c.id };
  }
  return origin;
}

/**
 * The history that ends at `head`, oldest first, following each commit's parent across
 * branches (`find` looks a commit up, `parentOf` gives its parent). It stops at a commit that
 * is not there, and at a loop (a corrupt pool must not loop forever).
 */
export function historyFrom<C>(
  head: CommitOrigin | null,
  find: (ref: CommitOrigin) => C | undefined,
  parentOf: (commit: C) => CommitOrigin | null,
): Array<CommitOrigin & { readonly commit: C }> {
  const out: Array<CommitOrigin & { readonly commit: C }> = [];
  const seen = new Set<string>();
  let ref = head;
  while (ref) {
    const key = `${ref.fsId}@${ref.commitId}`;
    if (seen.has(key)) break;
    seen.add(key);
    const commit = find(ref);
    if (commit === undefined) break;
    out.push({ ...ref, commit });
    ref = parentOf(commit);
  }
  return out.reverse();
}
