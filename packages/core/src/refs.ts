import { DotmeshError } from './errors.ts';

/**
 * Commit references as git spells them, over a branch's commit ids (oldest first; histories
 * are linear, so every commit has one parent):
 * - a base: `HEAD` (the newest commit) or a name (a commit id, or a branch name for callers
 *   that resolve branches);
 * - then any number of suffixes: `^` or `^1` (one back), `^0` (the same commit), `~` (one
 *   back) or `~N` (N back). `HEAD^^`, `HEAD~2` and `HEAD~1^` all name the same commit.
 * `^N` with N ≥ 2 names a merge's N-th parent in git; there are no merges here, so it is refused.
 */
export interface ParsedCommitRef {
  /** `HEAD`, or the name before the first `^`/`~`. */
  readonly base: string;
  /** How many commits back from the base. */
  readonly back: number;
}

const SUFFIX = /\^(\d*)|~(\d*)/y;

export function parseCommitRef(ref: string): ParsedCommitRef {
  const cut = ref.search(/[~^]/);
  if (cut < 0) return { base: ref, back: 0 };
  const base = ref.slice(0, cut);
  const invalid = () =>
    new DotmeshError('INVALID_ARGUMENT', `${ref} is not a commit reference`, {
      hint: 'give a commit id, HEAD or a branch name, optionally followed by ^ or ~N (e.g. HEAD~2)',
    });
  if (base === '') throw invalid();
  let back = 0;
  SUFFIX.lastIndex = cut;
  while (SUFFIX.lastIndex < ref.length) {
    const m = SUFFIX.exec(ref);
    if (m === null) throw invalid();
    const [, caret, tilde] = m;
    if (caret !== undefined) {
      const n = caret === '' ? 1 : Number(caret);
      if (n > 1) {
        throw new DotmeshError('COMMIT_NOT_FOUND', `${ref}: commits have one parent (no merges), so ^${n} names nothing`, {
          hint: `use ~${n} to go ${n} commits back`,
        });
      }
      back += n;
    } else {
      back += tilde === '' || tilde === undefined ? 1 : Number(tilde);
    }
  }
  return { base, back };
}

/** Is the reference relative to HEAD (`HEAD`, `HEAD^`, `HEAD~3`...)? */
export function isHeadRef(ref: string): boolean {
  const cut = ref.search(/[~^]/);
  return (cut < 0 ? ref : ref.slice(0, cut)) === 'HEAD';
}

/**
 * Resolves a reference against a branch's commit ids (oldest first): `HEAD` forms count back
 * from the newest; a commit id of the list (optionally with suffixes) counts back from it.
 * Texts as the original's `dm reset`: "Commits don't go back that far", "No commits match".
 */
export function resolveCommitRef(ref: string, commitIds: readonly string[]): string {
  const { base, back } = parseCommitRef(ref);
  const at = base === 'HEAD' ? commitIds.length - 1 : commitIds.indexOf(base);
  if (at < 0 && base !== 'HEAD') throw new DotmeshError('COMMIT_NOT_FOUND', 'No commits match');
  const index = at - back;
  if (index < 0) throw new DotmeshError('COMMIT_NOT_FOUND', "Commits don't go back that far");
  return commitIds[index] as string;
}
