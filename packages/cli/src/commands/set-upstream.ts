import { DotmeshError, parseDotName } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import { setUpstream } from '../config.ts';
import { type CommandContext, NO_CURRENT_DOT } from '../context.ts';
import { parseDotArg } from '../namespace.ts';
import { peerRemoteOf } from './transfer-args.ts';

/**
 * `dm dot set-upstream [<dot>] <remote> <remote-dot>`: records (or replaces) which dot on
 * `<remote>` push/pull use for the local `<dot>` (default: the current dot) by default.
 * Config only (`DefaultRemoteVolumes` of the remote's record); `<remote-dot>` without a
 * namespace is in the remote user's namespace. Prints nothing.
 */
export interface SetUpstreamResult {
  remote: string;
  local: { namespace: string; name: string };
  upstream: { namespace: string; name: string };
}

export async function dotSetUpstream(ctx: CommandContext, args: readonly string[]): Promise<SetUpstreamResult> {
  if (args.length !== 2 && args.length !== 3) throw usage('Please specify [<dot>] <remote> <remote-dot> as arguments.');
  const [peer, remoteDot] = args.slice(-2) as [string, string];
  const config = await ctx.loadConfig();
  const remote = peerRemoteOf(config.Remotes, config.S3Remotes, peer);
  let local: { namespace: string; name: string };
  if (args.length === 3) {
    local = await parseDotArg(ctx, args[0] ?? '');
  } else {
    const current = await ctx.currentDot();
    if (current === '') throw new DotmeshError('INVALID_ARGUMENT', NO_CURRENT_DOT);
    local = parseDotName(current);
  }
  const upstream = parseDotName(remoteDot, remote.User);
  setUpstream(remote, local.namespace, local.name, { Namespace: upstream.namespace, Name: upstream.name });
  await ctx.saveConfig();
  return { remote: peer, local, upstream };
}

export function renderSetUpstream(): string[] {
  return [];
}

export function registerSetUpstream(dot: Command, app: CliApp): void {
  dot
    .command('set-upstream')
    .summary('Set or update the default dot on a remote')
    .description(
      `Set or update the default dot on <remote> that 'dm push' and 'dm pull'
use for the local <dot> (default: the current dot). <remote-dot> without a
namespace is in the remote user's namespace. Only the config file changes.`,
    )
    .usage('[<dot>] <remote> <remote-dot>')
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        ctx.reporter.result(await dotSetUpstream(ctx, args), renderSetUpstream);
      }),
    );
}
