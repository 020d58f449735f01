import { formatDotName, MASTER_BRANCH } from '@dotmesh/core';
import type { DotListWithContainers } from '@dotmesh/rpc';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import { currentBranchOf } from '../config.ts';
import { type CommandContext, listNames } from '../context.ts';
import { prettySize, tabwrite } from '../format.ts';
import { currentBranchVolume } from './branch-volume.ts';

/**
 * `dm list` / `dm ls [-H]`: one row per dot with its containers and the figures (size, commits,
 * dirty bytes, server) of its CURRENT branch, the one the BRANCH column names. RPCs:
 * ListWithContainers (master figures, as the original server gives them), then Lookup+Get for
 * each dot whose current branch is not master.
 */
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
  /** Figures of `branch`; null when the server has no such branch (a stale config). */
  sizeBytes: number | null;
  commitCount: number | null;
  dirtyBytes: number | null;
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
      const branch = currentBranchOf(remote, dot);
      const v = branch === MASTER_BRANCH ? entry.Volume : await currentBranchVolume(ctx, { namespace, name }, branch);
      dots.push({
        namespace,
        name,
        dot,
        id: entry.Volume.Id,
        current: current !== '' && dot === formatDotName(parseLoose(current)),
        branch,
        server: v?.Master ?? entry.Volume.Master,
        containers: (entry.Containers ?? []).map((c) => c.Name),
        sizeBytes: v?.SizeBytes ?? null,
        commitCount: v?.CommitCount ?? null,
        dirtyBytes: v?.DirtyBytes ?? null,
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

/** `?` for a figure the server could not give (the branch does not exist). */
function figure(n: number | null, scripting: boolean): string {
  if (n === null) return '?';
  return scripting ? String(n) : prettySize(n);
}

function cells(d: ListedDot, scripting: boolean): string[] {
  const start = scripting ? '' : d.current ? '* ' : '  ';
  const commits = d.commitCount === null ? '?' : String(d.commitCount);
  const size = figure(d.sizeBytes, scripting);
  return [start + d.dot, d.branch, d.server, d.containers.join(','), size, commits, figure(d.dirtyBytes, scripting)];
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
    .usage('[-H]')
    .description(
      "List the dots on the current remote. For each: its current branch (chosen with 'dm checkout'), the server holding it, the containers using it, and the size, commit count and uncommitted (dirty) data of that branch. '*' marks the current dot.",
    )
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
