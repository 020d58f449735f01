import { deMasterify, formatDotName, parseDotName } from '@dotmesh/core';
import type { PinnedInfo } from '@dotmesh/rpc';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { parseDotArg } from '../namespace.ts';

/**
 * `dm dot pin [--branch <branch>] [<dot>]` and `dm dot unpin …`: a pinned branch stays with its
 * master node when that node is gone (no automatic failover); pinning the dot pins every branch
 * of it. RPC: SetBranchPinned (ours), which answers the branch's pin after the change.
 */
export interface SetPinnedResult {
  namespace: string;
  name: string;
  /** null: the dot's own pin was changed (the figures are its master branch's). */
  branch: string | null;
  pinned: boolean;
  /** Whether the branch (for the dot: its master branch) is pinned now, and by what. */
  now: Pick<PinnedInfo, 'Pinned' | 'Source'>;
}

export async function setPinned(
  ctx: CommandContext,
  args: readonly string[],
  branch: string | undefined,
  pinned: boolean,
): Promise<SetPinnedResult> {
  if (args.length > 1) throw usage('Please specify at most one dot.');
  const dot = args.length === 0 ? parseDotName(await ctx.strictCurrentDot()) : await parseDotArg(ctx, args[0] ?? '');
  const info = await ctx.call('SetBranchPinned', {
    Namespace: dot.namespace,
    Name: dot.name,
    Branch: deMasterify(branch ?? ''),
    WholeDot: branch === undefined,
    Pinned: pinned,
  });
  return { ...dot, branch: branch ?? null, pinned, now: { Pinned: info.Pinned, Source: info.Source } };
}

export function renderSetPinned(r: SetPinnedResult): string[] {
  const target = r.branch === null ? `Dot ${formatDotName(r)}` : `Branch ${r.branch || 'master'} of ${formatDotName(r)}`;
  if (r.pinned) return [`${target} is pinned to its node: it does not fail over when that node is gone.`];
  if (!r.now.Pinned) return [`${target} is not pinned: it fails over when its node is gone.`];
  return [`${target} is no longer pinned itself, but is still pinned by its dot (dm dot unpin without --branch).`];
}

export function registerPin(dot: Command, app: CliApp): void {
  for (const [name, pinned] of [
    ['pin', true],
    ['unpin', false],
  ] as const) {
    dot
      .command(name)
      .summary(pinned ? 'Keep a dot or branch on its node: no automatic failover' : 'Let a dot or branch fail over again')
      .usage('[--branch <branch>] [<dot>]')
      .description(
        pinned
          ? "Pin <dot> (default: the current dot), every branch of it, or one branch with --branch, to its master node: when that node is gone (its lease expired) the branch stays there instead of moving to the live node holding its newest commit, until the node returns or an admin moves it (dm dot smash-branch-master). 'dm dot show' shows each branch's pin."
          : 'Unpin <dot> (default: the current dot), or one branch with --branch: it fails over again when its master node is gone. A branch of a pinned dot stays pinned until the dot is unpinned.',
      )
      .argument('[args...]')
      .option('--branch <branch>', `${name} this branch only`)
      .action(
        action<{ branch?: string }>(app, async (ctx, args, opts) => {
          ctx.reporter.result(await setPinned(ctx, args, opts.branch, pinned), renderSetPinned);
        }),
      );
  }
}
