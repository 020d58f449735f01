import { deMasterify, parseDotName } from '@dotmesh/core';
import type { CommitItem } from '@dotmesh/rpc';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';
import { formatTimestampNs } from '../format.ts';
import { commitSizesOf } from './commit-space.ts';

/**
 * `dm log`: commits of the current dot and branch, oldest first, dates local and readable
 * (`--json` keeps the raw `timestamp` in Unix nanoseconds). RPC: Commits.
 */
export interface LogResult {
  namespace: string;
  name: string;
  branch: string;
  /** Sizes (--json only): null when the server cannot measure them (see commit-space.ts). */
  commits: { id: string; metadata: Record<string, string>; referencedBytes?: number | null; exclusiveBytes?: number | null }[];
}

/** Commits params exactly as the original sends them (keys sorted, as a Go map). */
export function commitsParams(dot: string, branch: string) {
  const { namespace, name } = parseDotName(dot);
  return { Branch: deMasterify(branch), Name: name, Namespace: namespace };
}

export async function log(ctx: CommandContext): Promise<LogResult> {
  const dot = await ctx.strictCurrentDot();
  const branch = await ctx.currentBranch(dot);
  const commits: CommitItem[] = await ctx.call('Commits', commitsParams(dot, branch));
  const { namespace, name } = parseDotName(dot);
  // Sizes walk the commits' files on the server: asked for only where they are shown (--json).
  const sizes = ctx.options.json ? await commitSizesOf(ctx, { namespace, name }, branch) : undefined;
  return {
    namespace,
    name,
    branch,
    commits: commits.map((c) => ({
      id: c.Id,
      metadata: c.Metadata ?? {},
      ...(sizes === undefined
        ? {}
        : { referencedBytes: sizes?.[c.Id]?.ReferencedBytes ?? null, exclusiveBytes: sizes?.[c.Id]?.ExclusiveBytes ?? null }),
    })),
  };
}

const SPECIAL = new Set(['author', 'message', 'timestamp']);

export function renderLog(data: LogResult): string[] {
  return data.commits.flatMap((c) => {
    const m = c.metadata;
    const extra = Object.keys(m)
      .filter((k) => !SPECIAL.has(k))
      .sort()
      .map((k) => `${k}: ${m[k]}`);
    return [
      `commit ${c.id}`,
      `author: ${m.author ?? ''}`,
      `date: ${formatTimestampNs(m.timestamp ?? '')}`,
      ...extra,
      '',
      `    ${m.message ?? ''}`,
      '',
    ];
  });
}

export function register(program: Command, app: CliApp): void {
  program
    .command('log')
    .summary('Show commit logs')
    .description(
      "Show the commits of the current dot's current branch, oldest first: id, author, date, other metadata and message. With --json, the date is the raw timestamp (Unix nanoseconds) and each commit has its sizes.",
    )
    .argument('[args...]')
    .action(
      action(app, async (ctx, args) => {
        if (args.length > 0) throw usage('Please specify no arguments.');
        ctx.reporter.result(await log(ctx), renderLog);
      }),
    );
}
