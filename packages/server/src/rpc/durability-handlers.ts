import { DotmeshError } from '@dotmesh/core';
import type { DurabilityInfo } from '@dotmesh/rpc';
import { type DurabilitySettings, isDurability } from '../cluster/durability.ts';
import { awaitOtherNode, type SyncCommitDeps } from '../cluster/sync-commit.ts';
import type { DotCatalog } from '../dots/catalog.ts';
import { commitBranch } from '../dots/commit.ts';
import type { DotContext } from '../dots/context.ts';
import { resolveBranch } from '../dots/resolve.ts';
import type { HandlerTable } from './handlers.ts';

export interface DurabilityDeps {
  readonly ctx: DotContext;
  readonly catalog: DotCatalog;
  readonly durability: DurabilitySettings;
  readonly syncCommit: SyncCommitDeps;
}

/**
 * Commit, and the durability it obeys: GetDurability and SetDurability (ours; any user who
 * sees the dot). A Commit on a `sync` branch replies once another node holds the commit
 * (cluster/sync-commit.ts), else NOT_REPLICATED; on an `async` one at once. The reply's shape
 * is the original's either way (the commit id).
 */
export function durabilityHandlers(deps: DurabilityDeps): Pick<HandlerTable, 'Commit' | 'GetDurability' | 'SetDurability'> {
  const { ctx, catalog, durability } = deps;
  const info = (dotId: string, fsId: string): DurabilityInfo => {
    const effective = durability.of(dotId, fsId);
    const record = ctx.view.durabilityOf(dotId);
    return {
      Durability: effective.durability,
      Source: effective.source,
      DotDurability: record?.default ?? '',
      BranchDurability: record?.branches[fsId] ?? '',
    };
  };
  return {
    Commit: async (caller, p) => {
      const commitId = await commitBranch(ctx, caller, {
        namespace: p.Namespace,
        name: p.Name,
        branch: p.Branch,
        message: p.Message,
        metadata: p.Metadata,
      });
      const { dot, branch, fsId } = resolveBranch(ctx, caller, p.Namespace, p.Name, p.Branch);
      if (durability.of(dot.id, fsId).durability === 'async') return commitId;
      const what = `${dot.info.namespace}/${dot.info.name} (branch ${branch})`;
      const node = await awaitOtherNode(deps.syncCommit, { dotId: dot.id, fsId, commitId, what });
      ctx.logger.debug({ fsId, commitId, node }, 'commit held by another node (sync durability)');
      return commitId;
    },
    GetDurability: async (caller, p) => {
      const fsId = catalog.requireBranchId(caller, p.Namespace, p.Name, p.Branch);
      return info(catalog.requireDot(caller, p.Namespace, p.Name).id, fsId);
    },
    SetDurability: async (caller, p) => {
      if (!isDurability(p.Durability) && p.Durability !== '') {
        throw new DotmeshError(
          'INVALID_ARGUMENT',
          `durability must be sync or async, not ${JSON.stringify(p.Durability.slice(0, 64))}`,
          {
            hint: 'sync: a Commit replies once another node holds it; async: at once; "" clears the setting',
          },
        );
      }
      const dot = catalog.requireDot(caller, p.Namespace, p.Name);
      const fsId = catalog.requireBranchId(caller, p.Namespace, p.Name, p.WholeDot ? '' : p.Branch);
      const value = p.Durability === '' ? null : p.Durability;
      await durability.set(dot.id, p.WholeDot ? null : fsId, value);
      ctx.logger.info(
        { dotId: dot.id, fsId: p.WholeDot ? undefined : fsId, durability: value ?? 'inherited', by: caller.name },
        'durability set',
      );
      return info(dot.id, fsId);
    },
  };
}
