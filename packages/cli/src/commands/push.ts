import type { Command } from 'commander';
import { action, type CliApp } from '../command.ts';
import type { TransferFlags } from './transfer-args.ts';

/** `dm push <remote> [<dot> [<branch>]] [--remote-name <ns/dot>] [--stash-on-divergence]`. */
export const TRANSFER_EXIT_CODES = `
Exit codes: 0 the transfer finished; else the status of the error it ended
with, as in 'dm --help': 9 the two sides diverged (the common commit and each
side's extra commits are printed; --stash-on-divergence keeps the receiving
side's on a new branch), 2 wrong arguments or an unknown remote, 3 a dot or
branch not found, 5 the receiving branch in use, 6 a rejected API key, 7 a full
pool, 10 a server out of reach, 1 anything unexpected.`;

export function register(program: Command, app: CliApp): void {
  program
    .command('push')
    .summary('Push new commits from the specified dot and branch to a remote dot (creating it if necessary)')
    .description(
      `Pushes new commits to a <remote> from the branch <branch> of <dot>.
Without <dot>, the current dot and its current branch are pushed; without
<branch>, master. The remote dot and branch are created on demand.

'push' will attempt to use the remote dot the local <dot> was originally
cloned from on the specified <remote> (remembered on first push/pull/clone,
see 'dm dot set-upstream'), but any remote dot can be named with
'--remote-name'; otherwise it is <dot> in the remote user's namespace.

Example: to make a new backup and push new commits from the master branch of
dot 'postgres' to cluster 'backups':

    dm switch postgres && dm commit -m "friday backup"
    dm push backups`,
    )
    .usage('[options] <remote> [<dot> [<branch>]]')
    .argument('[args...]')
    .option('--remote-name <dot>', 'Remote dot name to push to, including remote namespace e.g. alice/apples')
    .option('--stash-on-divergence', 'stash any divergence on a branch and continue')
    .addHelpText('after', TRANSFER_EXIT_CODES)
    .action(
      action<TransferFlags>(app, async (ctx, args, opts) => {
        const { runTransfer, renderTransfer } = await import('./transfer-run.ts');
        ctx.reporter.result(await runTransfer(ctx, 'push', args, opts), renderTransfer);
      }),
    );
}
