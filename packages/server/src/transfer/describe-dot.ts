import type { VolumeSizes } from '@dotmesh/storage';
import type { WireDot, WireVolume } from '@dotmesh/transfer';
import type { DotContext } from '../dots/context.ts';

/**
 * This server's description of a dot for a transfer (WireDot, @dotmesh/transfer wire-dot.ts),
 * or null when it is not here. `usage: false` leaves out each branch's uncommitted bytes and
 * containers (0 and none: no look at the pool), for a side that only sends.
 */
export async function describeDot(
  ctx: Pick<DotContext, 'containers' | 'index' | 'storage'>,
  dotId: string,
  o: { readonly usage: boolean } = { usage: true },
): Promise<WireDot | null> {
  const dot = ctx.index.dots.get(dotId);
  if (!dot) return null;
  const fsIds = [...dot.branches.values()];
  const sizes = o.usage ? await ctx.storage.sizes(fsIds, { referenced: false }) : new Map<string, VolumeSizes>();
  const volumes: WireVolume[] = [];
  for (const fsId of fsIds) {
    const b = ctx.index.branches.get(fsId);
    if (!b) continue;
    const s = sizes.get(fsId);
    volumes.push({
      fsId,
      branch: b.label.branch,
      origin: b.label.origin,
      commits: b.commits.map((c) => ({ id: c.id, parent: c.meta.parent, metadata: { ...c.meta.metadata } })),
      hidden: [...b.label.hiddenCommits],
      dirtyBytes: s?.dirty ? Math.max(1, s.dirtyBytes) : 0,
      containers: o.usage ? (await ctx.containers.containersFor(fsId)).map((c) => c.Name) : [],
    });
  }
  return { id: dot.id, namespace: dot.info.namespace, name: dot.info.name, volumes };
}
