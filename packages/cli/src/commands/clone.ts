import type { Command } from 'commander';
import { action, type CliApp } from '../command.ts';
import { TRANSFER_EXIT_CODES } from './push.ts';
import type { TransferFlags } from './transfer-args.ts';

/** `dm clone <remote> [<dot> [<branch>]] [--local-name <dot>] [--stash-on-divergence]`. */
export function register(program: Command, app: CliApp): void {
  program
    .command('clone')
    .summary('Make a complete copy of a remote dot')
    .description(
      `Make a complete copy on the current active cluster of the given
<branch> of the given <dot> on the given <remote>. <dot> defaults to the
remote user's namespace. By default, name the dot the same here as it's
named there (without its namespace), but that can be overridden with
'--local-name'. The current dot does not change.

Example: to clone the 'repro_bug_1131' branch from dot 'billing_postgres' on
cluster 'devdata' to your currently active local dotmesh instance which has no
copy of 'billing_postgres' at all yet:

    dm clone devdata billing_postgres repro_bug_1131`,
    )
    .usage('[options] <remote> [<dot> [<branch>]]')
    .argument('[args...]')
    .option('--local-name <dot>', 'Local dot name to create')
    .option('--stash-on-divergence', 'stash any divergence on a branch and continue')
    .addHelpText('after', TRANSFER_EXIT_CODES)
    .action(
      action<TransferFlags>(app, async (ctx, args, opts) => {
        const { runTransfer, renderTransfer } = await import('./transfer-run.ts');
        ctx.reporter.result(await runTransfer(ctx, 'clone', args, opts), renderTransfer);
      }),
    );
}
