import {
  abbreviate,
  DotmeshError,
  type DotName,
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
import { prettySize } from '../format.ts';
import { branchVolume } from './branch-volume.ts';
import { commitsParams } from './log.ts';

/**
 * `dm checkout [-b [--carry]] [--stop-others] <branch>`. RPCs, as the original: Branches (exists?); with -b:
 * Commits of the current branch (HEAD), Lookup+Get of it (its uncommitted bytes, an addition)
 * then Branch{SourceBranch: "master" spelled out}; then the config's dot's containers are
 * switched (SwitchContainers, master sent as "") and then the config's current branch is set
 * (the original set the config first; a refused switch then left the config naming a branch
 * the data did not show).
 *
 * Uncommitted changes belong to the branch they were made on. `-b` warns when it leaves some
 * behind. `--carry` takes them along: they are committed on the current branch, the new
 * branch is made from that commit, containers switch to it, and then the old branch is rolled
 * back to its previous HEAD — only if nothing wrote to it meanwhile and no container still
 * uses it; otherwise the commit stays on the old branch too, and a warning says how to drop it.
 *
 * The server refuses (IN_USE) to move a container onto data that another running container
 * (pinned to the branch) uses; `--stop-others` has it stop those first (they stay stopped).
 */
export interface CheckoutResult {
  namespace: string;
  name: string;
  branch: string;
  created: boolean;
  /** Uncommitted bytes of the branch left (with -b; 0 when clean or not measured). */
  uncommittedBytes: number;
  /** With --carry and changes to carry: the commit holding them, and whether the old branch still has it. */
  carried: { commitId: string; keptOn: string | null } | null;
}

/** Bytes for a sentence: `512 bytes`, `20.00 MiB`. */
function amount(bytes: number): string {
  return bytes < 1024 ? `${bytes} bytes` : prettySize(bytes);
}

export async function checkout(
  ctx: CommandContext,
  to: string,
  create: boolean,
  opts: { readonly carry?: boolean; readonly stopOthers?: boolean } = {},
): Promise<CheckoutResult> {
  const { carry = false, stopOthers = false } = opts;
  const dot = await ctx.strictCurrentDot();
  const from = await ctx.currentBranch(dot);
  const { namespace, name } = parseDotName(dot);
  const branches = await ctx.call('Branches', { Namespace: namespace, Name: name });
  const exists = to === MASTER_BRANCH || branches.includes(to);
  let uncommittedBytes = 0;
  let carried: { commitId: string; head: string } | null = null;
  if (create) {
    if (exists) throw new DotmeshError('BRANCH_EXISTS', `Branch already exists: ${to}`);
    validateName('branch', to);
    const commits = await ctx.call('Commits', commitsParams(dot, from));
    if (commits.length === 0) throw new DotmeshError('COMMIT_NOT_FOUND', 'No commits match HEAD');
    const head = resolveCommitRef(
      'HEAD',
      commits.map((c) => c.Id),
    );
    uncommittedBytes = (await branchVolume(ctx, { namespace, name }, from)).DirtyBytes;
    let source = head;
    if (carry && uncommittedBytes > 0) {
      const commitId = await ctx.call('Commit', {
        Namespace: namespace,
        Name: name,
        Branch: deMasterify(from),
        Message: `Uncommitted changes of ${from}, carried to ${to}`,
        Metadata: {},
      });
      carried = { commitId, head };
      source = commitId;
    }
    await ctx.call('Branch', { Namespace: namespace, Name: name, SourceBranch: from, NewBranchName: to, SourceCommitId: source });
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
  const result = { namespace, name, branch: to, created: create, uncommittedBytes };
  if (carried) {
    const dropped = await dropCarriedCommit(ctx, { namespace, name }, from, carried.head);
    if (!dropped.ok) {
      ctx.reporter.warn(
        `the uncommitted changes of ${from} were carried to ${to}, but ${from} keeps them too, as its commit ` +
          `${carried.commitId} (${dropped.why}); to drop them there: dm checkout ${from} && dm reset --hard HEAD^`,
      );
    }
    return { ...result, carried: { commitId: carried.commitId, keptOn: dropped.ok ? null : from } };
  }
  if (create && uncommittedBytes > 0) {
    ctx.reporter.warn(
      `${amount(uncommittedBytes)} of uncommitted changes stayed on branch ${from} (\`dm checkout ${from}\` shows them): ` +
        `${to} starts from the last commit of ${from}. To take uncommitted changes along, commit them before ` +
        '`dm checkout -b`, or pass --carry.',
    );
  }
  return { ...result, carried: null };
}

/**
 * Rolls `branch` back to `head` (dropping the commit that carried its changes away), unless
 * that could lose data or disturb someone: a container still uses it (pinned to it), or it
 * has changed since that commit.
 */
async function dropCarriedCommit(
  ctx: CommandContext,
  dot: DotName,
  branch: string,
  head: string,
): Promise<{ ok: true } | { ok: false; why: string }> {
  const containers = await ctx.call('Containers', { Branch: deMasterify(branch), Name: dot.name, Namespace: dot.namespace });
  if (containers.length > 0) return { ok: false, why: `containers use it: ${containers.map((c) => c.Name).join(', ')}` };
  if ((await branchVolume(ctx, dot, branch)).DirtyBytes > 0) return { ok: false, why: 'it was written to meanwhile' };
  try {
    await ctx.call('Rollback', { Branch: deMasterify(branch), Name: dot.name, Namespace: dot.namespace, SnapshotId: head });
    return { ok: true };
  } catch (e) {
    return { ok: false, why: e instanceof Error ? e.message : String(e) };
  }
}

export function register(program: Command, app: CliApp): void {
  program
    .command('checkout')
    .summary('Switch or make branches')
    .usage('[-b [--carry]] [--stop-others] <branch>')
    .description(
      "Switch the current dot to <branch>: its mounts and the containers following the dot show that branch's data. With -b, first make <branch> from the current branch's last commit.\n\nUncommitted changes stay on the branch they were made on (-b warns when it leaves some behind); with --carry, -b takes them along to the new branch as its first commit, and the current branch goes back to its last commit.\n\nA container is never moved onto data another running container (pinned to <branch>) uses: the checkout is refused, naming both, unless --stop-others stops those first.",
    )
    .argument('[args...]')
    .option('-b, --branch', 'Make branch')
    .option('--carry', 'with -b: take uncommitted changes along to the new branch (see above)')
    .option(
      '--stop-others',
      "stop the running containers pinned to the branch whose data the dot's containers would share (they stay stopped)",
    )
    .action(
      action<{ branch?: boolean; carry?: boolean; stopOthers?: boolean }>(app, async (ctx, args, opts) => {
        const [to] = args;
        if (args.length !== 1 || to === undefined) throw usage('Please give me a branch name.');
        if (opts.carry && !opts.branch) throw usage('--carry goes with -b (it takes uncommitted changes to a new branch).');
        const flags = { carry: opts.carry === true, stopOthers: opts.stopOthers === true };
        ctx.reporter.result(await checkout(ctx, to, opts.branch === true, flags), () => []);
      }),
    );
}
