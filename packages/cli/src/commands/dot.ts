import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import { dotDelete, renderDotDelete } from './dot-delete.ts';
import { dotShow, renderDotShow, renderDotShowScripting } from './dot-show.ts';
import { registerPin } from './pin.ts';
import { registerSetDurability } from './set-durability.ts';
import { registerSetUpstream } from './set-upstream.ts';
import { registerSmashBranchMaster } from './smash-branch-master.ts';

/** `dm dot show|delete|set-upstream|set-durability|smash-branch-master`. */
export function register(program: Command, app: CliApp): void {
  const dot = program
    .command('dot')
    .summary('Manage dots')
    .usage('<command>')
    .description(
      `Manage dots in the cluster.

Run 'dm dot set-upstream [<dot>] <remote> <remote-dot>' to
change the default remote dot for <dot> on <remote>.
Run 'dm dot show [<dot>]' to show information about the dot.
Run 'dm dot delete [-f] <dot>' to delete a dot with all its
branches and commits.
Run 'dm dot set-durability [--branch <branch>] [<dot>] sync|async|inherit'
to choose whether commits wait for another node to hold them.
Run 'dm dot smash-branch-master [<dot>] <branch> [<server ID>]' to make
a node the master of a branch when its master node is gone for good.

Where '[<dot>]' is omitted, the current dot (selected by 'dm switch') is used.`,
    );
  registerSetUpstream(dot, app);
  dot
    .command('show')
    .summary('Display information about a dot')
    .usage('[-H] [<dot>]')
    .description(
      "Show a dot (default: the current dot): its ids, its current branch's commit count, size and uncommitted (dirty) data, its branches with their containers and replication status, and the remote dots it tracks.",
    )
    .argument('[args...]')
    .option(
      '-H, --scripting',
      'scripting mode. Do not print headers, separate fields by a single tab instead of arbitrary whitespace.',
    )
    .action(
      action<{ scripting?: boolean }>(app, async (ctx, args, opts) => {
        if (args.length > 1) throw usage('Please specify at most one dot.');
        const data = await dotShow(ctx, args[0]);
        ctx.reporter.result(data, opts.scripting ? renderDotShowScripting : renderDotShow);
      }),
    );
  dot
    .command('delete')
    .summary('Delete a dot')
    .usage('[-f] <dot>')
    .description(
      'Delete <dot> with all its branches and commits, after asking for confirmation unless -f is given. The current dot is never implied. Refused while containers use the dot.',
    )
    .argument('[args...]')
    .option('-f, --force', 'perform dangerous operations without requiring confirmation.')
    .action(
      action<{ force?: boolean }>(app, async (ctx, args, opts) => {
        const [name] = args;
        if (args.length !== 1 || name === undefined) {
          throw usage('Please specify the dot to delete (the default dot is ignored for deletion, to avoid mistakes).');
        }
        ctx.reporter.result(await dotDelete(ctx, name, opts.force === true), renderDotDelete);
      }),
    );
  registerSetDurability(dot, app);
  registerPin(dot, app);
  registerSmashBranchMaster(dot, app);
}
