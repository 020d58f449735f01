import { symlink } from 'node:fs/promises';
import { abbreviate, DEFAULT_SUBDOT, DotmeshError, validateName } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { parseDotArg } from '../namespace.ts';

/**
 * `dm mount [-r] <dot[@branch]> <mountpoint>`: List (exists?), Procure{Subdot: "__default__"}
 * (which makes this node the dot's master and returns the host path), then a symlink
 * mountpoint → path. Works only on the server's host (same filesystem), as the original.
 */
export async function mount(ctx: CommandContext, arg: string, mountpoint: string, create: boolean) {
  const at = arg.indexOf('@');
  const dotPart = at < 0 ? arg : arg.slice(0, at);
  const branch = at < 0 ? '' : arg.slice(at + 1);
  if (branch !== '') validateName('branch', branch);
  const dot = await parseDotArg(ctx, dotPart);
  if (!create && !(await ctx.dotExists(dot))) {
    throw new DotmeshError(
      'DOT_NOT_FOUND',
      `Dot ${abbreviate(arg)} does not exist.\n\nIf you want to create it - use the '--create' flag`,
    );
  }
  const name = branch === '' ? dot.name : `${dot.name}@${branch}`;
  const path = await ctx.call('Procure', { Namespace: dot.namespace, Name: name, Subdot: DEFAULT_SUBDOT });
  try {
    await symlink(path, mountpoint);
  } catch (e) {
    throw new DotmeshError('INVALID_ARGUMENT', `cannot create ${mountpoint}: ${(e as Error).message}`, {
      hint: 'the mountpoint must not exist yet; dm creates it as a symlink to the dot',
    });
  }
  return { namespace: dot.namespace, name, path, mountpoint };
}

export function register(program: Command, app: CliApp): void {
  program
    .command('mount')
    .summary('Mount a dot to the local filesystem.')
    .description(
      `Mounts a dot's filesystem to a given location on your host.

Run 'dm mount <dot> <mountpoint>' to expose the dot's filesystem at <mountpoint> on your host: <mountpoint> becomes a symlink to the data of the dot's current branch, and follows 'dm checkout'.

Run 'dm mount <dot>@<branch> <mountpoint>' to pin one branch instead.

NOTE: this only works on the host running the dotmesh server (Linux).`,
    )
    .usage('[-r] <dot>[@<branch>] <mountpoint>')
    .argument('[args...]')
    .option('-r, --create', 'Create the dot if it does not exist.')
    .action(
      action<{ create?: boolean }>(app, async (ctx, args, opts) => {
        const [dot, mountpoint] = args;
        if (args.length !== 2 || dot === undefined || mountpoint === undefined) {
          throw usage('Please specify <dot> <mountpoint> as arguments.');
        }
        const data = await mount(ctx, dot, mountpoint, opts.create === true);
        ctx.reporter.result(data, (d) => [
          `procured dot: ${d.namespace}/${d.name} into ${d.path}`,
          `symlinked dot: ${d.namespace}/${d.name} from ${d.path} to ${d.mountpoint}`,
        ]);
      }),
    );
}
