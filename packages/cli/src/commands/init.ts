import { abbreviate, CLI_MAX_DOT_NAME, DotmeshError, formatDotName } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { parseDotArg } from '../namespace.ts';

/** `dm init <dot>`: List (exists?), Create, then select the new dot. Prints nothing. */
export function checkDotArg(args: string[]): string {
  if (args.length > 1) throw usage('Too many arguments specified (more than 1).');
  const dot = args[0];
  if (dot === undefined) throw usage('No dot name specified.');
  if (dot.length >= CLI_MAX_DOT_NAME) {
    throw new DotmeshError(
      'INVALID_NAME',
      `Error: ${abbreviate(dot)} is an invalid name: dot names must be <${CLI_MAX_DOT_NAME} characters`,
    );
  }
  return dot;
}

export async function initDot(ctx: CommandContext, arg: string): Promise<{ namespace: string; name: string }> {
  const dot = await parseDotArg(ctx, arg);
  if (await ctx.dotExists(dot)) throw new DotmeshError('DOT_EXISTS', `Error: ${abbreviate(arg)} exists already`);
  await ctx.call('Create', { Namespace: dot.namespace, Name: dot.name });
  const { remote } = await ctx.currentRemote();
  remote.CurrentVolume = formatDotName(dot);
  await ctx.saveConfig();
  return { namespace: dot.namespace, name: dot.name };
}

export function register(program: Command, app: CliApp): void {
  program
    .command('init')
    .summary('Create an empty dot')
    .usage('<dot>')
    .description('Create an empty dot (a versioned volume) on the current remote and make it the current dot.')
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        ctx.reporter.result(await initDot(ctx, checkDotArg(args)), () => []);
      }),
    );
}
