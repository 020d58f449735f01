import { DotmeshError, MASTER_BRANCH } from '@dotmesh/core';
import type { PathToTopLevelFilesystem } from '@dotmesh/rpc';
import type { DotContext } from '../dots/context.ts';
import type { IndexedDot } from '../dots/dot-index.ts';

/**
 * The original's PathToTopLevelFilesystem of a branch: the dot's master, then each branch
 * volume on the way from it to the given branch (root → tip), each with its origin commit.
 */
export function pathToTopLevel(ctx: Pick<DotContext, 'index'>, dot: IndexedDot, fsId: string): PathToTopLevelFilesystem {
  const clones: PathToTopLevelFilesystem['Clones'] = [];
  const seen = new Set<string>();
  let current = ctx.index.branches.get(fsId);
  while (current && current.label.branch !== MASTER_BRANCH) {
    if (seen.has(current.label.fsId)) throw new DotmeshError('INTERNAL', `branch origins of ${dot.id} form a cycle`);
    seen.add(current.label.fsId);
    const origin = current.label.origin;
    clones.unshift({
      Name: current.label.branch,
      Clone: {
        TopLevelFilesystemId: dot.id,
        FilesystemId: current.label.fsId,
        Name: current.label.branch,
        Origin: { FilesystemId: origin?.fsId ?? '', SnapshotId: origin?.commitId ?? '' },
      },
    });
    current = origin ? ctx.index.branches.get(origin.fsId) : undefined;
  }
  return {
    TopLevelFilesystemId: dot.id,
    TopLevelFilesystemName: { Namespace: dot.info.namespace, Name: dot.info.name },
    Clones: clones,
  };
}
