import { MASTER_BRANCH, parseDotName } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';

/** `dm branch`: the current dot's branches (Branches + the implicit master), sorted. */
export async function allBranches(ctx: CommandContext, dot: string): Promise<string[]> {
  const { namespace, name } = parseDotName(dot);
  const branches = await ctx.call('Branches', { Namespace: namespace, Name: name });
  return [...new Set([...branches, MASTER_BRANCH])].sort();
}

export async function listBranches(ctx: CommandContext) {
  const dot = await ctx.strictCurrentDot();
  const current = await ctx.currentBranch(dot);
  const branches = await allBranches(ctx, dot);
  return { dot, currentBranch: current, branches };
}

export function renderBranches(data: { currentBranch: string; branches: string[] }): string[] {
  return data.branches.map((b) => `${b === data.currentBranch ? '* ' : '  '}${b}`);
}

export function register(program: Command, app: CliApp): void {
  program
    .command('branch')
    .summary('List branches')
    .description(
      "List the current dot's branches, master included; '*' marks the current one. Make one with 'dm checkout -b <branch>'.",
    )
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        if (args.length > 0) throw usage('Please specify no arguments (use `dm checkout -b <branch>` to create one).');
        ctx.reporter.result(await listBranches(ctx), renderBranches);
      }),
    );
}
