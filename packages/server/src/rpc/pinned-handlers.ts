import type { PinnedInfo } from '@dotmesh/rpc';
import type { PinnedBranches } from '../cluster/pinned.ts';
import type { DotCatalog } from '../dots/catalog.ts';
import type { DotContext } from '../dots/context.ts';
import type { HandlerTable } from './handlers.ts';

/**
 * GetPinned and SetBranchPinned (ours; any user who sees the dot): a pinned branch stays with
 * its master node when that node is gone — no automatic failover (cluster/failover.ts).
 * Pinning the dot (WholeDot) pins every branch of it, those made later too.
 */
export function pinnedHandlers(deps: {
  readonly ctx: Pick<DotContext, 'view' | 'logger'>;
  readonly catalog: DotCatalog;
  readonly pinned: PinnedBranches;
}): Pick<HandlerTable, 'GetPinned' | 'SetBranchPinned'> {
  const { ctx, catalog, pinned } = deps;
  const info = (dotId: string, fsId: string): PinnedInfo => {
    const record = ctx.view.pinnedOf(dotId);
    const source = pinned.of(dotId, fsId);
    return {
      Pinned: source !== '',
      Source: source,
      DotPinned: record?.dot === true,
      BranchPinned: record?.branches.includes(fsId) === true,
    };
  };
  return {
    GetPinned: async (caller, p) => {
      const fsId = catalog.requireBranchId(caller, p.Namespace, p.Name, p.Branch);
      return info(catalog.requireDot(caller, p.Namespace, p.Name).id, fsId);
    },
    SetBranchPinned: async (caller, p) => {
      const dot = catalog.requireDot(caller, p.Namespace, p.Name);
      const fsId = catalog.requireBranchId(caller, p.Namespace, p.Name, p.WholeDot ? '' : p.Branch);
      await pinned.set(dot.id, p.WholeDot ? null : fsId, p.Pinned);
      ctx.logger.info(
        { dotId: dot.id, fsId: p.WholeDot ? undefined : fsId, pinned: p.Pinned, by: caller.name },
        p.Pinned ? 'pinned to its master node (no automatic failover)' : 'unpinned (automatic failover)',
      );
      return info(dot.id, fsId);
    },
  };
}
