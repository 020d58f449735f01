import { DotmeshError, normalizeBranch, validateName } from '@dotmesh/core';
import { type Caller, canAccess } from './caller.ts';
import { type ContainerUse, containerMovesKey } from './containers.ts';
import type { DotContext } from './context.ts';
import type { ContainerPaths } from './procure.ts';
import { resolveBranch } from './resolve.ts';
import { refuseIfInUse } from './rollback.ts';
import { moveConflict, sharedBranchError } from './shared-branch.ts';

export interface SwitchRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  /** The branch ("" = master). */
  readonly branch: unknown;
  /**
   * Stop (for good) the running containers the move would otherwise share a directory with,
   * instead of refusing (shared-branch.ts).
   */
  readonly stopOthers?: boolean;
}

/**
 * SwitchContainers: containers following the dot now see `branch`. The followers running now
 * are stopped, the link re-pointed and they are started again; pinned containers stay where
 * they are. Refuses (IN_USE, both sides named) when a follower would share a directory of the
 * branch with another running container, unless `stopOthers`. Container moves of one dot run
 * one at a time (a reset waiting to start its containers again cannot interleave with a switch).
 */
export async function switchContainers(
  ctx: Pick<
    DotContext,
    'containerMoves' | 'containers' | 'index' | 'inUse' | 'publications' | 'locks' | 'storage' | 'view' | 'masterNodes'
  >,
  paths: ContainerPaths,
  caller: Caller,
  req: SwitchRequest,
): Promise<void> {
  if (await heldElsewhere(ctx, paths, caller, req)) return;
  const { dot, fsId, branch } = resolveBranch(ctx, caller, req.namespace, req.name, req.branch);
  const link = paths.linkPath(dot.info.namespace, dot.info.name);
  const target = ctx.storage.volumePath(fsId);
  if ((await paths.currentTarget(dot.info.namespace, dot.info.name)) === target) return;
  const dotName = `${dot.info.namespace}/${dot.info.name}`;
  const what = `switch ${dotName} to branch ${branch}`;
  await ctx.containerMoves.run(containerMovesKey(dot.id), async () => {
    const listed = await ctx.containers.uses();
    const movers = listed.filter((u) => u.link === link);
    // Before anything is stopped, and again under the lock just before the link moves (a
    // container may have been started on the branch meanwhile).
    const clearTarget = async (uses: readonly ContainerUse[]) => {
      const conflict = moveConflict(movers, uses, fsId);
      if (conflict === undefined) return;
      if (req.stopOthers !== true) throw sharedBranchError(dotName, branch, conflict);
      await ctx.containers.stop(conflict.occupying, `${what}: stopping the containers already on it`);
    };
    if (movers.length > 0) await clearTarget(listed);
    // Containers mounted through the link hold the old branch until they are mounted again.
    await ctx.containers.whileStopped({ link }, what, () =>
      ctx.locks.shared(dot.id, async () => {
        const current = await paths.currentTarget(dot.info.namespace, dot.info.name);
        const followed = [...dot.branches.values()].find((id) => ctx.storage.volumePath(id) === current);
        const uses = await ctx.containers.uses();
        if (followed !== undefined && followed !== fsId && !uses.some((u) => u.fsId === followed)) {
          // Whatever else holds the old branch open would silently stay on it: refuse instead
          // (containers pinned to it stay there by design).
          await refuseIfInUse(ctx, followed, dotName);
        }
        if (movers.length > 0) await clearTarget(uses);
        await paths.point(link, target);
      }),
    );
  });
}

/**
 * On a cluster, a branch that another node holds and this one does not (`dm checkout` sent to a
 * node that does not master the dot): true when no container here follows the dot, so there is
 * nothing to switch on this node; IN_USE naming the holder when containers here follow it (they
 * can only see the branch once it is mounted here). False when this node holds the branch or
 * the cluster does not know it (resolveBranch then answers as on a single node).
 */
async function heldElsewhere(
  ctx: Pick<DotContext, 'containers' | 'index' | 'view' | 'masterNodes'>,
  paths: ContainerPaths,
  caller: Caller,
  req: SwitchRequest,
): Promise<boolean> {
  const namespace = validateName('namespace', req.namespace);
  const name = validateName('dot', req.name);
  const branch = normalizeBranch(req.branch);
  const dot = ctx.view.dotByName(namespace, name);
  const fsId = dot && canAccess(caller, dot) ? ctx.view.branchesOf(dot.id).get(branch) : undefined;
  if (fsId === undefined || ctx.index.branches.has(fsId)) return false;
  const link = paths.linkPath(namespace, name);
  const followers = (await ctx.containers.uses()).filter((u) => u.link === link);
  if (followers.length === 0) return true;
  const holder = ctx.masterNodes.get(fsId)?.nodeId ?? '';
  throw new DotmeshError(
    'IN_USE',
    `cannot switch the containers following ${namespace}/${name} on this node to branch ${branch}: node ${holder || '(none)'} holds it, not this node`,
    {
      hint: `mount the branch here first (dm mount ${namespace}/${name}@${branch} <dir>), or run the containers on node ${holder}`,
      data: { containers: followers.map((u) => u.container.Name), node: holder },
    },
  );
}
