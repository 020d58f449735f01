import { formatDotName } from '@dotmesh/core';
import type { DotListWithContainers } from '@dotmesh/rpc';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import { currentBranchOf } from '../config.ts';
import { type CommandContext, listNames } from '../context.ts';
import { prettySize, tabwrite } from '../format.ts';

/** `dm list` / `dm ls [-H]`: one row per dot (master branch) with its containers. RPC: ListWithContainers. */
export interface ListedDot {
  namespace: string;
  name: string;
  /** `foo` for admin/foo, `ns/foo` otherwise. */
  dot: string;
  id: string;
  current: boolean;
  /** The client-side current branch of the dot. */
  branch: string;
  server: string;
  containers: string[];
  sizeBytes: number;
  commitCount: number;
  dirtyBytes: number;
}

export interface ListResult {
  currentRemote: string;
  dots: ListedDot[];
}

export const currentRemoteHeader = (name: string) =>
  `Current remote: ${name} (use 'dm remote -v' to list and 'dm remote switch' to switch)`;

export async function listDots(ctx: CommandContext): Promise<ListResult> {
  const { name: currentRemote, remote } = await ctx.currentRemote();
  const all: DotListWithContainers = await ctx.call('ListWithContainers', null);
  const current = await ctx.currentDot(listNames(all));
  const dots: ListedDot[] = [];
  for (const [namespace, byName] of Object.entries(all)) {
    for (const [name, entry] of Object.entries(byName)) {
      const dot = formatDotName({ namespace, name });
      const v = entry.Volume;
      dots.push({
        namespace,
        name,
        dot,
        id: v.Id,
        current: current !== '' && dot === formatDotName(parseLoose(current)),
        branch: currentBranchOf(remote, dot),
        server: v.Master,
        containers: (entry.Containers ?? []).map((c) => c.Name),
        sizeBytes: v.SizeBytes,
        commitCount: v.CommitCount,
        dirtyBytes: v.DirtyBytes,
      });
    }
  }
  dots.sort((a, b) => (a.dot < b.dot ? -1 : a.dot > b.dot ? 1 : 0));
  return { currentRemote, dots };
}

/** `ns/name` or `name` without validation (config values are not ours to reject). */
function parseLoose(dot: string): { namespace: string; name: string } {
  const i = dot.indexOf('/');
  return i < 0 ? { namespace: 'admin', name: dot } : { namespace: dot.slice(0, i), name: dot.slice(i + 1) };
}

function cells(d: ListedDot, scripting: boolean): string[] {
  const size = scripting ? String(d.sizeBytes) : prettySize(d.sizeBytes);
  const dirty = scripting ? String(d.dirtyBytes) : prettySize(d.dirtyBytes);
  const start = scripting ? '' : d.current ? '* ' : '  ';
  return [start + d.dot, d.branch, d.server, d.containers.join(','), size, String(d.commitCount), dirty];
}

export function renderList(data: ListResult, scripting: boolean): string[] {
  if (scripting) return data.dots.map((d) => cells(d, true).join('\t'));
  const header = ['  DOT', 'BRANCH', 'SERVER', 'CONTAINERS', 'SIZE', 'COMMITS', 'DIRTY'];
  return tabwrite([header, ...data.dots.map((d) => cells(d, false))]);
}

export function register(program: Command, app: CliApp): void {
  program
    .command('list')
    .alias('ls')
    .summary('Enumerate dots on the current remote')
    .argument('[args...]')
    .option(
      '-H, --scripting',
      'scripting mode. Do not print headers, separate fields by a single tab instead of arbitrary whitespace.',
    )
    .action(
      action<{ scripting?: boolean }>(app, async (ctx, args, opts) => {
        if (args.length > 0) throw usage('Please specify no arguments.');
        const scripting = opts.scripting === true;
        if (!scripting) {
          ctx.reporter.notice(currentRemoteHeader((await ctx.currentRemote()).name));
          ctx.reporter.notice('');
        }
        ctx.reporter.result(await listDots(ctx), (d) => renderList(d, scripting));
      }),
    );
}
