import { type DotName, deMasterify } from '@dotmesh/core';
import type { CommitSizesResult } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';

/**
 * Per-commit space (RPC CommitSizes, an addition of this server): what each commit alone holds.
 * Optional everywhere it is shown: against a server without the method (the original), or if
 * measuring fails, the result is null and commands print what they printed before.
 */
export async function commitSizesOf(ctx: CommandContext, dot: DotName, branch: string): Promise<CommitSizesResult | null> {
  try {
    return await ctx.call('CommitSizes', { Namespace: dot.namespace, Name: dot.name, Branch: deMasterify(branch) });
  } catch {
    return null;
  }
}

/**
 * Sum, over every commit of the given branches (each counted once), of the bytes only that
 * commit holds; null when the server cannot say. Stops asking after the first refusal.
 */
export async function dotCommitSpace(ctx: CommandContext, dot: DotName, branches: readonly string[]): Promise<number | null> {
  const seen = new Map<string, number>();
  for (const branch of branches) {
    const sizes = await commitSizesOf(ctx, dot, branch);
    if (sizes === null) return null;
    for (const [id, s] of Object.entries(sizes)) seen.set(id, s.ExclusiveBytes);
  }
  let total = 0;
  for (const bytes of seen.values()) total += bytes;
  return total;
}
