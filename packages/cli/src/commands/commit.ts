import { deMasterify, parseDotName } from '@dotmesh/core';
import type { Command } from 'commander';
import { action, type CliApp, usage } from '../command.ts';
import type { CommandContext } from '../context.ts';

/**
 * `dm commit -m MSG [-d k=v]...`: Commit on the current dot and branch; prints the new id.
 * Metadata is sent sorted by key (as Go marshals a map), `{}` when none.
 */
export function parseMetadata(items: readonly string[]): Record<string, string> {
  const pairs: [string, string][] = [];
  for (const item of items) {
    // The original read -d as a comma-separated list; split on commas only when every piece
    // is itself a pair, so a value may contain commas.
    const pieces = item.split(',');
    const split = pieces.length > 1 && pieces.every((p) => p.includes('=')) ? pieces : [item];
    for (const piece of split) {
      const eq = piece.indexOf('=');
      if (eq < 0) throw usage(`Each metadata value must be a name=value pair: ${piece}`);
      pairs.push([piece.slice(0, eq), piece.slice(eq + 1)]);
    }
  }
  pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(pairs);
}

export async function commit(ctx: CommandContext, message: string, metadata: Record<string, string>) {
  const dot = await ctx.strictCurrentDot();
  const branch = await ctx.currentBranch(dot);
  const { namespace, name } = parseDotName(dot);
  const id = await ctx.call('Commit', {
    Namespace: namespace,
    Name: name,
    Branch: deMasterify(branch),
    Message: message,
    Metadata: metadata,
  });
  return { id, namespace, name, branch };
}

export function register(program: Command, app: CliApp): void {
  program
    .command('commit')
    .summary('Record changes to a dot')
    .usage('-m <message> [-d <name=value>]...')
    .description(
      "Commit the current branch of the current dot: an atomic snapshot of all its data, whatever its size. Prints the new commit's id.",
    )
    .argument('[args...]')
    .option('-m, --message <message>', 'Use the given string as the commit message.')
    .option('-d, --metadata <name=value>', 'Add custom metadata to the commit (e.g. --metadata name=value).', collect, [])
    .action(
      action<{ message?: string; metadata: string[] }>(app, async (ctx, args, opts) => {
        if (args.length > 0) throw usage('Please specify no arguments (give the message with -m).');
        if (!opts.message) throw usage('Please provide a commit message');
        const data = await commit(ctx, opts.message, parseMetadata(opts.metadata));
        ctx.reporter.result(data, (d) => [d.id]);
      }),
    );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
