import { deMasterify, formatDotName, parseDotName } from '@dotmesh/core';
import type { DurabilityInfo } from '@dotmesh/rpc';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { parseDotArg } from '../namespace.ts';

/**
 * `dm dot set-durability [--branch <branch>] [<dot>] sync|async|inherit`: whether a Commit
 * replies only once another node holds the commit (`sync`) or at once (`async`), for a dot
 * (its branches' unless set on one) or one branch; `inherit` clears the setting. RPC:
 * SetDurability (ours), which answers the branch's durability after the change.
 */
export interface SetDurabilityResult {
  namespace: string;
  name: string;
  /** null: the dot's own setting was changed (the figures are its master branch's). */
  branch: string | null;
  set: 'sync' | 'async' | 'inherit';
  durability: DurabilityInfo['Durability'];
  source: DurabilityInfo['Source'];
}

const VALUES = ['sync', 'async', 'inherit'] as const;

export async function setDurability(
  ctx: CommandContext,
  args: readonly string[],
  branch: string | undefined,
): Promise<SetDurabilityResult> {
  if (args.length < 1 || args.length > 2) throw usage('Please specify [<dot>] sync|async|inherit as arguments.');
  const value = args[args.length - 1] ?? '';
  const set = VALUES.find((v) => v === value);
  if (set === undefined) throw usage(`Durability must be sync, async or inherit, not ${JSON.stringify(value)}.`);
  const dot = args.length === 1 ? parseDotName(await ctx.strictCurrentDot()) : await parseDotArg(ctx, args[0] ?? '');
  const info = await ctx.call('SetDurability', {
    Namespace: dot.namespace,
    Name: dot.name,
    Branch: deMasterify(branch ?? ''),
    WholeDot: branch === undefined,
    Durability: set === 'inherit' ? '' : set,
  });
  return { ...dot, branch: branch ?? null, set, durability: info.Durability, source: info.Source };
}

export function renderSetDurability(r: SetDurabilityResult): string[] {
  const target = r.branch === null ? `dot ${formatDotName(r)}` : `branch ${r.branch || 'master'} of ${formatDotName(r)}`;
  if (r.set === 'inherit') {
    return [
      `Durability of ${target} cleared: ${r.branch === null ? 'its master branch is' : 'it is'} ${r.durability} (${r.source}).`,
    ];
  }
  return [`Durability of ${target} set to ${r.set}.`];
}

export function registerSetDurability(dot: Command, app: CliApp): void {
  dot
    .command('set-durability')
    .summary('Make commits of a dot or branch wait for another node (sync) or not (async)')
    .usage('[--branch <branch>] [<dot>] sync|async|inherit')
    .description(
      "Set the durability of <dot> (default: the current dot), which its branches follow unless set on one, or of one branch with --branch. sync: a commit is acknowledged only once another node of the cluster holds it; when no other node confirms it in time (the server's syncCommitTimeoutMs, default 30 s) the commit fails with NOT_REPLICATED yet stays on its master, which keeps sending it. async: a commit is acknowledged at once; it reaches the other nodes in the background. inherit: clear the setting (a branch then follows its dot; a dot the cluster's default: sync while another node is live, async on a single node). 'dm dot show' shows each branch's.",
    )
    .argument('[args...]')
    .option('--branch <branch>', 'set the durability of this branch only')
    .action(
      action<{ branch?: string }>(app, async (ctx, args, opts) => {
        ctx.reporter.result(await setDurability(ctx, args, opts.branch), renderSetDurability);
      }),
    );
}
