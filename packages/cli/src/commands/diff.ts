import { deMasterify, parseDotName } from '@dotmesh/core';
import type { FileDiff } from '@dotmesh/rpc';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { CommitRefResolver } from './commit-refs.ts';

/**
 * `dm diff [<commit> [<commit>]]`: what changed in the current dot and branch.
 * No argument: the working copy (live state) against HEAD; one: the working copy against that
 * commit; two: between the two commits. Refs are resolved as git does (commit-refs.ts):
 * `HEAD~2`, a branch name, a commit id of any branch. Paths are relative to the dot's root
 * (the default subdot is `__default__/`). RPCs: Commits (and Branches) to resolve refs, DiffCommits.
 */
export interface DiffOutput {
  namespace: string;
  name: string;
  branch: string;
  /** Commit ids; `to` is null for the working copy. */
  from: string;
  to: string | null;
  changes: FileDiff[];
}

export async function diff(ctx: CommandContext, refs: readonly string[]): Promise<DiffOutput> {
  const dot = await ctx.strictCurrentDot();
  const branch = await ctx.currentBranch(dot);
  const resolver = new CommitRefResolver(ctx, dot, branch);
  const from = await resolver.resolve(refs[0] ?? 'HEAD');
  const to = refs[1] === undefined ? null : await resolver.resolve(refs[1]);
  const { namespace, name } = parseDotName(dot);
  const result = await ctx.call('DiffCommits', {
    Branch: deMasterify(branch),
    FromCommit: from,
    Name: name,
    Namespace: namespace,
    ToCommit: to ?? '',
  });
  return { namespace, name, branch, from, to, changes: result.Files };
}

/** `git diff --name-status` style: `M\tpath`, `R\told -> new`. */
export function renderDiff(data: DiffOutput): string[] {
  return data.changes.map((c) =>
    c.change === 'R' && c.to !== undefined ? `R\t${c.filename} -> ${c.to}` : `${c.change}\t${c.filename}`,
  );
}

export function register(program: Command, app: CliApp): void {
  program
    .command('diff')
    .summary('Show changes between the working copy and a commit, or between commits')
    .usage('[<commit> [<commit>]]')
    .description(
      `Show what changed in the current dot and branch, one line per entry: "+" added, "-" removed, "M" modified, "R old -> new" moved.

With no commit: the working copy against HEAD; with one: the working copy against that commit; with two: from the first to the second.

A commit is named as in git: HEAD, HEAD^, HEAD~2, a branch name (its newest commit, e.g. master or master~1), or a commit id of any branch of the dot.`,
    )
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        if (args.length > 2) throw usage('Please specify at most two commits.');
        ctx.reporter.result(await diff(ctx, args), renderDiff);
      }),
    );
}
