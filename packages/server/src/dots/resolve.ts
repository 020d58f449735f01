import { normalizeBranch, validateName } from '@dotmesh/core';
import { type Caller, canAccess } from './caller.ts';
import type { DotContext } from './context.ts';
import { notFound } from './create-delete.ts';
import type { IndexedDot } from './dot-index.ts';

export interface ResolvedBranch {
  readonly dot: IndexedDot;
  readonly branch: string;
  readonly fsId: string;
}

/** Resolves `ns/name` + branch ("" = master) for a caller who must be able to see the dot. */
export function resolveBranch(
  ctx: Pick<DotContext, 'index'>,
  caller: Caller,
  namespace: unknown,
  name: unknown,
  branch: unknown,
): ResolvedBranch {
  const ns = validateName('namespace', namespace);
  const dotName = validateName('dot', name);
  const b = normalizeBranch(branch);
  const dot = ctx.index.requireDot(ns, dotName);
  if (!canAccess(caller, dot.info)) throw notFound(ns, dotName);
  return { dot, branch: b, fsId: ctx.index.requireBranchId(dot, b) };
}
