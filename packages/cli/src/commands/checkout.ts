import {
  abbreviate,
  DotmeshError,
  deMasterify,
  MASTER_BRANCH,
  parseDotName,
  resolveCommitRef,
  validateName,
} from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import { setCurrentBranch } from '../config.ts';
import type { CommandContext } from '../context.ts';
import { commitsParams } from './log.ts';

/**
 * `dm checkout [-b] <branch>`. RPCs, as the original: Branches (exists?); with -b: Commits of
 * the current branch (HEAD) then Branch{SourceBranch: "master" spelled out}; then the config's
 * dot's containers are switched (SwitchContainers, master sent as "") and then the config's
 * current branch is set (the original set the config first; a refused switch then left the
 * config naming a branch the data did not show). The server refuses (IN_USE) to move a container
 * onto data that another running container (pinned to the branch) uses; `--stop-others` has it
 * stop those first (they stay stopped).
 */
export async function checkout(ctx: CommandContext, to: string, create: boolean, stopOthers = false) {
  const dot = await ctx.strictCurrentDot();
  const from = await ctx.currentBranch(dot);
  const { namespace, name } = parseDotName(dot);
  const branches = await ctx.call('Branches', { Namespace: namespace, Name: name });
  const exists = to === MASTER_BRANCH || branches.includes(to);
  if (create) {
    if (exists) throw new DotmeshError('BRANCH_EXISTS', `Branch already exists: ${to}`);
    validateName('branch', to);
    const commits = await ctx.call('Commits', commitsParams(dot, from));
    if (commits.length === 0) throw new DotmeshError('COMMIT_NOT_FOUND', 'No commits match HEAD');
    const head = resolveCommitRef(
      'HEAD',
      commits.map((c) => c.Id),
    );
    await ctx.call('Branch', { Namespace: namespace, Name: name, SourceBranch: from, NewBranchName: to, SourceCommitId: head });
  } else if (!exists) {
    throw new DotmeshError('BRANCH_NOT_FOUND', `Branch does not exist: ${abbreviate(to)}`, {
      hint: 'list branches with `dm branch`, or create it with `dm checkout -b`',
    });
  }
  // Switch the data first: if the server refuses (IN_USE), the config keeps naming the branch
  // the data still shows.
  // StopOthers only when asked: otherwise the request is the original's, byte for byte.
  await ctx.call('SwitchContainers', {
    Name: name,
    Namespace: namespace,
    NewBranchName: deMasterify(to),
    ...(stopOthers ? { StopOthers: true } : {}),
  });
  const { remote } = await ctx.currentRemote();
  setCurrentBranch(remote, dot, to);
  await ctx.saveConfig();
  return { namespace, name, branch: to, created: create };
}

export function register(program: Command, app: CliApp): void {
  program
    .command('checkout')
    .summary('Switch or make branches')
    .usage('[-b] [--stop-others] <branch>')
    .argument('[args...]')
    .option('-b, --branch', 'Make branch')
    .option(
      '--stop-others',
      "stop the running containers pinned to the branch whose data the dot's containers would share (they stay stopped)",
    )
    .action(
      action<{ branch?: boolean; stopOthers?: boolean }>(app, async (ctx, args, opts) => {
        const [to] = args;
        if (args.length !== 1 || to === undefined) throw usage('Please give me a branch name.');
        ctx.reporter.result(await checkout(ctx, to, opts.branch === true, opts.stopOthers === true), () => []);
      }),
    );
}
