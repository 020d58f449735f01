import { abbreviate, DotmeshError, formatDotName } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { parseDotArg } from '../namespace.ts';
import { checkDotArg } from './init.ts';

/** `dm switch <dot>`: the dot must exist (List); only the config changes. */
export async function switchDot(ctx: CommandContext, arg: string): Promise<{ namespace: string; name: string }> {
  const dot = await parseDotArg(ctx, arg);
  if (!(await ctx.dotExists(dot))) throw new DotmeshError('DOT_NOT_FOUND', `Error: ${abbreviate(arg)} doesn't exist`);
  const { remote } = await ctx.currentRemote();
  remote.CurrentVolume = formatDotName(dot);
  await ctx.saveConfig();
  return { namespace: dot.namespace, name: dot.name };
}

export function register(program: Command, app: CliApp): void {
  program
    .command('switch')
    .summary('Change which dot is active')
    .usage('<dot>')
    .description(
      'Make <dot> the current dot: the one that commit, log, branch, checkout, reset and diff work on. Only the config file changes.',
    )
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        ctx.reporter.result(await switchDot(ctx, checkDotArg(args)), () => []);
      }),
    );
}
