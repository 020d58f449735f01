import type { DotContext } from './context.ts';
import type { ContainerLink, ContainerPaths } from './procure.ts';

/**
 * Start-up: removes the container_mnt links no dot owns any more — those of a dot whose
 * delete a crash interrupted (recovery finished the delete, the links stayed), temporary
 * links of an interrupted re-point, and links to a volume that is not a branch of the dot they
 * name. Links to a branch of the dot they name are kept (containers running across a restart
 * and mounts made by `dm mount` go through them). Returns what was removed.
 */
export async function pruneContainerLinks(
  ctx: Pick<DotContext, 'index' | 'storage'>,
  paths: ContainerPaths,
): Promise<ContainerLink[]> {
  const stale: ContainerLink[] = [];
  for (const link of await paths.links()) {
    const id = ctx.index.dotIdByName(link.namespace, link.name);
    const dot = id === undefined ? undefined : ctx.index.dots.get(id);
    const targets = new Set([...(dot?.branches.values() ?? [])].map((fsId) => ctx.storage.volumePath(fsId)));
    if (link.temporary || !targets.has(link.target)) stale.push(link);
  }
  await paths.remove(stale);
  return stale;
}
