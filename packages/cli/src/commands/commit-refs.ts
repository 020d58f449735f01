import { abbreviate, DotmeshError, MASTER_BRANCH, parseCommitRef, parseDotName, resolveCommitRef } from '@dotmesh/core';
import type { CommandContext } from '../context.ts';
import { allBranches } from './branch.ts';
import { commitsParams } from './log.ts';

/**
 * Resolves the commit references `dm diff` takes, as git does, to commit ids of one dot:
 * - `HEAD`, `HEAD^`, `HEAD~N`... on the current branch;
 * - a branch name (its newest commit), with the same suffixes (`master~2`); a name that is
 *   both a branch and a commit id means the branch, as in git;
 * - a commit id of any branch of the dot, with the same suffixes counted along the history of
 *   a branch that holds it (the current branch first).
 * RPCs: `Commits` of each branch looked at (once), `Branches` when a name is not HEAD.
 */
export class CommitRefResolver {
  readonly #ctx: CommandContext;
  readonly #dot: string;
  readonly #branch: string;
  readonly #commits = new Map<string, Promise<string[]>>();
  #branches: Promise<string[]> | undefined;

  constructor(ctx: CommandContext, dot: string, currentBranch: string) {
    this.#ctx = ctx;
    this.#dot = dot;
    this.#branch = currentBranch;
  }

  /** Commit ids of a branch, oldest first. */
  commitsOf(branch: string): Promise<string[]> {
    let ids = this.#commits.get(branch);
    if (!ids) {
      ids = this.#ctx.call('Commits', commitsParams(this.#dot, branch)).then((cs) => cs.map((c) => c.Id));
      this.#commits.set(branch, ids);
    }
    return ids;
  }

  async resolve(ref: string): Promise<string> {
    const { base, back } = parseCommitRef(ref);
    if (base === 'HEAD') return resolveCommitRef(ref, await this.commitsOf(this.#branch));
    this.#branches ??= allBranches(this.#ctx, this.#dot);
    const branches = await this.#branches;
    if (branches.includes(base)) return resolveCommitRef(`HEAD~${back}`, await this.commitsOf(base));
    const current = await this.commitsOf(this.#branch);
    if (current.includes(base)) return resolveCommitRef(ref, current);
    // An id of another branch: as given when it needs no counting (the server finds it in
    // the dot), else counted along the history of a branch that holds it.
    if (back === 0) return base;
    for (const b of [MASTER_BRANCH, ...branches.filter((x) => x !== MASTER_BRANCH)]) {
      const ids = await this.commitsOf(b);
      if (ids.includes(base)) return resolveCommitRef(ref, ids);
    }
    const { namespace, name } = parseDotName(this.#dot);
    throw new DotmeshError('COMMIT_NOT_FOUND', `No commit ${JSON.stringify(abbreviate(ref))} in ${namespace}/${name}`, {
      hint: "list commits with 'dm log' and branches with 'dm branch'",
    });
  }
}
