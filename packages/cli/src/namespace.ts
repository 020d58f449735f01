import { DEFAULT_NAMESPACE, type DotName, NAME_PATTERN, parseDotName } from '@dotmesh/core';
import type { CommandContext } from './context.ts';

/**
 * The namespace of a dot name given without one: the current remote's user (a namespace is a
 * user name), so `dm init apples` on a remote of user alice makes `alice/apples`; `admin` when
 * the remote's user is admin or not a valid name, or when no remote is selected (the command
 * then fails with its own clearer error).
 */
export async function defaultNamespace(ctx: CommandContext): Promise<string> {
  try {
    const { remote } = await ctx.currentRemote();
    return NAME_PATTERN.test(remote.User) ? remote.User : DEFAULT_NAMESPACE;
  } catch {
    return DEFAULT_NAMESPACE;
  }
}

/** Parses a dot name from the command line (`[ns/]name`), defaulting the namespace as above. */
export async function parseDotArg(ctx: CommandContext, arg: string): Promise<DotName> {
  return parseDotName(arg, await defaultNamespace(ctx));
}
