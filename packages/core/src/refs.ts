import { DotmeshError } from './errors.ts';

/**
 * Resolves a `dm reset` reference against a branch's commit ids (oldest first):
 * a commit id, `HEAD`, or `HEAD` followed by carets (`HEAD^^` = two back), as the original.
 */
export function resolveCommitRef(ref: string, commitIds: readonly string[]): string {
  const m = /^HEAD(\^*)$/.exec(ref);
  if (m) {
    const back = m[1]?.length ?? 0;
    const index = commitIds.length - 1 - back;
    if (index < 0) throw new DotmeshError('COMMIT_NOT_FOUND', "Commits don't go back that far");
    return commitIds[index] as string;
  }
  if (!commitIds.includes(ref)) throw new DotmeshError('COMMIT_NOT_FOUND', 'No commits match');
  return ref;
}
