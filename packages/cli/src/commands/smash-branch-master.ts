import { deMasterify, formatDotName, parseDotName } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { parseDotArg } from '../namespace.ts';

/**
 * `dm dot smash-branch-master [<dot>] <branch> [<server ID>]`: makes a node the master of a
 * branch without a handoff, for a master node that is gone for good (the original's escape
 * hatch). RPCs: Lookup, ForceBranchMasterById (`Master` "" = the node serving the call, i.e.
 * the one the current remote points at), then Get to report the master the cluster now names.
 */
export interface SmashResult {
  namespace: string;
  name: string;
  branch: string;
  branchId: string;
  /** The master node the cluster names after the call. */
  master: string;
}

export async function smashBranchMaster(ctx: CommandContext, args: readonly string[]): Promise<SmashResult> {
  if (args.length < 1 || args.length > 3) throw usage('Please specify [<dot>] <branch> [<server ID>] as arguments.');
  const dot = args.length === 1 ? parseDotName(await ctx.strictCurrentDot()) : await parseDotArg(ctx, args[0] ?? '');
  const branch = (args.length === 1 ? args[0] : args[1]) ?? '';
  const server = args[2] ?? '';
  const branchId = await ctx.call('Lookup', { Namespace: dot.namespace, Name: dot.name, Branch: deMasterify(branch) });
  await ctx.call('ForceBranchMasterById', { FilesystemId: branchId, Master: server });
  const volume = await ctx.call('Get', branchId);
  return { ...dot, branch: branch === '' ? 'master' : branch, branchId, master: volume.Master };
}

export function renderSmash(r: SmashResult): string[] {
  return [`Node ${r.master} is now the master of branch ${r.branch} of ${formatDotName(r)} (${r.branchId}).`];
}

export function registerSmashBranchMaster(dot: Command, app: CliApp): void {
  dot
    .command('smash-branch-master')
    .summary('Abandon the current master node for a branch, possibly losing any data held on that node.')
    .usage('[<dot>] <branch> [<server ID>]')
    .description(
      "Make <server ID> (default: the node the current remote points at) the master node of <branch> of <dot> (default: the current dot) without asking the current master node: for a master node that is gone for good. The branch continues from the commits the new master node holds; commits and uncommitted data that only the old master node held are missing until it returns. To move a branch between live nodes with everything it has, mount it on the other node instead ('dm mount'). Admin only. The node ids: 'dm dot show -H <dot>' (its latency lines).",
    )
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        ctx.reporter.result(await smashBranchMaster(ctx, args), renderSmash);
      }),
    );
}
