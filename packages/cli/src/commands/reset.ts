import { deMasterify, parseDotName, resolveCommitRef } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { commitsParams } from './log.ts';

/**
 * `dm reset [--hard] <ref>`: roll the current branch back to a commit (`HEAD`, `HEAD^^`, an id).
 * Always hard, as the original (`--hard` is accepted and implied). RPCs: Commits, Rollback.
 */
export async function reset(ctx: CommandContext, ref: string) {
  const dot = await ctx.strictCurrentDot();
  const branch = await ctx.currentBranch(dot);
  const commits = await ctx.call('Commits', commitsParams(dot, branch));
  const commitId = resolveCommitRef(
    ref,
    commits.map((c) => c.Id),
  );
  const { namespace, name } = parseDotName(dot);
  await ctx.call('Rollback', { Branch: deMasterify(branch), Name: name, Namespace: namespace, SnapshotId: commitId });
  return { namespace, name, branch, commitId };
}

export function register(program: Command, app: CliApp): void {
  program
    .command('reset')
    .summary('Reset current HEAD to the specified state')
    .usage('[--hard] <ref>')
    .description(
      "Roll the current branch of the current dot back to <ref>: its data becomes that commit's, later commits leave the branch, and uncommitted changes are discarded. <ref> is a commit id of the branch, HEAD (drop uncommitted changes), HEAD^, HEAD^^, HEAD~2...",
    )
    .argument('[args...]')
    .option('--hard', 'Any changes to tracked files in the current dot since <ref> are discarded (always the case).')
    .action(
      action(app, async (ctx, args) => {
        const [ref] = args;
        if (args.length !== 1 || ref === undefined) throw usage('Please specify one ref only.');
        ctx.reporter.result(await reset(ctx, ref), () => []);
      }),
    );
}
