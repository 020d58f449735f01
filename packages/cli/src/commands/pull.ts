import type { Command } from 'commander';
import { action, type CliApp } from '../command.ts';
import { TRANSFER_EXIT_CODES } from './push.ts';
import type { TransferFlags } from './transfer-args.ts';

/** `dm pull <remote> [<dot> [<branch>]] [--remote-name <ns/dot>] [--stash-on-divergence]`. */
export function register(program: Command, app: CliApp): void {
  program
    .command('pull')
    .summary('Pull new commits from a remote dot to a local copy of that dot')
    .description(
      `Pulls commits from a remote dot to <dot>'s given <branch>.
Without <dot>, the current dot and its current branch are pulled into;
without <branch>, master.

'pull' will attempt to use the remote dot the local <dot> was originally
cloned from on the specified <remote>, but any remote dot can be named with
'--remote-name'; otherwise it is <dot> in the remote user's namespace.

Use 'dm clone' to make an initial copy, 'pull' only updates an existing one.

Example: to pull any new commits from the master branch of dot 'postgres' on
cluster 'backups':

    dm pull backups postgres master`,
    )
    .usage('[options] <remote> [<dot> [<branch>]]')
    .argument('[args...]')
    .option('--remote-name <dot>', 'Remote dot name to pull from')
    .option('--stash-on-divergence', 'stash any divergence on a branch and continue')
    .addHelpText('after', TRANSFER_EXIT_CODES)
    .action(
      action<TransferFlags>(app, async (ctx, args, opts) => {
        const { runTransfer, renderTransfer } = await import('./transfer-run.ts');
        ctx.reporter.result(await runTransfer(ctx, 'pull', args, opts), renderTransfer);
      }),
    );
}
