import { type DotName, deMasterify, isDotmeshError } from '@dotmesh/core';
import type { DotmeshVolume } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';

/** A branch's volume (its figures: size, dirty bytes, commit count, server). RPCs: Lookup, Get. */
export async function branchVolume(ctx: CommandContext, dot: DotName, branch: string): Promise<DotmeshVolume> {
  const id = await ctx.call('Lookup', { Namespace: dot.namespace, Name: dot.name, Branch: deMasterify(branch) });
  return ctx.call('Get', id);
}

/**
 * The volume of the branch the config names as current, or null when the server has no such
 * branch (a config left from an older dot of the same name): commands then show no figures
 * rather than another branch's, and warn.
 */
export async function currentBranchVolume(ctx: CommandContext, dot: DotName, branch: string): Promise<DotmeshVolume | null> {
  try {
    return await branchVolume(ctx, dot, branch);
  } catch (e) {
    if (isDotmeshError(e) && e.code === 'BRANCH_NOT_FOUND') {
      warnNoSuchCurrentBranch(ctx, dot, branch);
      return null;
    }
    throw e;
  }
}

/** The warning of a current branch (in the config) that the dot does not have. */
export function warnNoSuchCurrentBranch(ctx: CommandContext, dot: DotName, branch: string): void {
  ctx.reporter.warn(
    `the current branch of ${dot.namespace}/${dot.name} in the config, ${branch}, does not exist on this remote; ` +
      `pick one with \`dm switch ${dot.namespace}/${dot.name} && dm checkout <branch>\``,
  );
}
