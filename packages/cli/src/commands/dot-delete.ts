import { DotmeshError, type ErrorCode, formatDotName } from '@dotmesh/core';
import { forgetDot } from '../config.ts';
import type { CommandContext } from '../context.ts';
import { parseDotArg } from '../namespace.ts';

/**
 * `dm dot delete [-f] <dot>`: asks for an exact `Y` unless forced; Delete is tried up to 5
 * times (waiting 1, 2, 3, 4 s between tries) unless the error is definitive — among them the
 * server's IN_USE for running containers (its `data.containers`), which no wait ends;
 * then the dot is forgotten in the current remote's config. The current dot is never implied.
 */
export const DELETE_ATTEMPTS = 5;

/** Errors that another try cannot fix. */
const DEFINITIVE: ReadonlySet<ErrorCode> = new Set([
  'INVALID_ARGUMENT',
  'INVALID_NAME',
  'DOT_NOT_FOUND',
  'PERMISSION_DENIED',
  'UNAUTHENTICATED',
  'NOT_ADMIN',
]);

/** IN_USE because containers run on the dot: they stay until someone stops them. */
function usedByContainers(e: DotmeshError): boolean {
  const containers = e.data?.containers;
  return e.code === 'IN_USE' && Array.isArray(containers) && containers.length > 0;
}

export const confirmPrompt = (dot: string) =>
  `Please confirm that you really want to delete the dot ${dot}, including all branches and commits? (enter Y to continue): `;

export async function dotDelete(
  ctx: CommandContext,
  arg: string,
  force: boolean,
): Promise<{ namespace: string; name: string; deleted: boolean }> {
  const dot = await parseDotArg(ctx, arg);
  if (!force) {
    const answer = await ctx.io.readLine(confirmPrompt(arg), { toStderr: ctx.reporter.json });
    if (answer !== 'Y') return { ...dot, deleted: false };
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < DELETE_ATTEMPTS; attempt++) {
    if (attempt > 0) await ctx.io.sleep(attempt * 1000);
    try {
      await ctx.call('Delete', { Namespace: dot.namespace, Name: dot.name });
      lastError = undefined;
      break;
    } catch (e) {
      lastError = e;
      if (!(e instanceof DotmeshError) || DEFINITIVE.has(e.code) || usedByContainers(e)) break;
    }
  }
  if (lastError !== undefined) throw lastError;
  const { remote } = await ctx.currentRemote();
  forgetDot(remote, formatDotName(dot));
  await ctx.saveConfig();
  return { ...dot, deleted: true };
}

export function renderDotDelete(d: { deleted: boolean }): string[] {
  return d.deleted ? [] : ['Aborted.'];
}
