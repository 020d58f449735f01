import { DotmeshError, ROOT_SUBDOT } from '@dotmesh/core';
import type { ContainerInfo, ContainerUse } from './containers.ts';

/**
 * The rule that keeps two containers off one data directory when Dotmesh moves containers:
 * moving the followers of a dot (the running containers mounted through its unpinned link)
 * onto a branch must not put one of them on a directory of that branch that a *different*
 * running container already uses. Directories overlap when the subdots are the same, or either
 * is `__root__` (the whole dot). Containers that already share a directory stay as the user set
 * them up: only a move is refused, and a reset moves no container (it stops and starts the same
 * containers on the same branch).
 */
export interface BranchConflict {
  /** Followers that the move would put on a directory in use. */
  readonly moving: ContainerInfo[];
  /** The other running containers already using those directories of the branch. */
  readonly occupying: ContainerInfo[];
}

export function subdotsOverlap(a: string, b: string): boolean {
  return a === b || a === ROOT_SUBDOT || b === ROOT_SUBDOT;
}

/**
 * Which of `movers` (uses through the link being moved) would share a directory of branch
 * `fsId` with a use of `uses` by another container; undefined when none would.
 */
export function moveConflict(
  movers: readonly ContainerUse[],
  uses: readonly ContainerUse[],
  fsId: string,
): BranchConflict | undefined {
  const moverIds = new Set(movers.map((u) => u.container.Id));
  const moving = new Map<string, ContainerInfo>();
  const occupying = new Map<string, ContainerInfo>();
  for (const other of uses) {
    if (other.fsId !== fsId || moverIds.has(other.container.Id)) continue;
    for (const mover of movers) {
      if (!subdotsOverlap(mover.subdot, other.subdot)) continue;
      moving.set(mover.container.Id, mover.container);
      occupying.set(other.container.Id, other.container);
    }
  }
  if (occupying.size === 0) return undefined;
  const sorted = (m: Map<string, ContainerInfo>) => [...m.values()].sort((a, b) => a.Name.localeCompare(b.Name));
  return { moving: sorted(moving), occupying: sorted(occupying) };
}

/** The refusal: IN_USE, naming both sides in the message and in `data`. */
export function sharedBranchError(dotName: string, branch: string, conflict: BranchConflict): DotmeshError {
  const names = (cs: readonly ContainerInfo[]) => cs.map((c) => c.Name).join(', ');
  const { moving, occupying } = conflict;
  return new DotmeshError(
    'IN_USE',
    `Cannot switch ${dotName} to branch ${branch}: ${names(moving)} would use the same data as ${names(occupying)}, already running on ${branch}`,
    {
      hint: `stop ${names(occupying)} yourself, or run 'dm checkout --stop-others ${branch}' to have ${occupying.length === 1 ? 'it' : 'them'} stopped for good`,
      data: { dot: dotName, branch, moving, occupying },
    },
  );
}
