import { DotmeshError } from '@dotmesh/core';
import type { PoolStatus } from '@dotmesh/rpc';
import { branchCommitSizes } from '../dots/commit-sizes.ts';
import type { DotContext } from '../dots/context.ts';
import type { PoolControl } from '../pool/pool-grow.ts';
import type { HandlerTable } from './handlers.ts';

/**
 * Handlers of this server's capacity methods (not in the original): CommitSizes, PoolInfo and
 * GrowPool. Without a PoolControl (in-process servers on other drivers) the pool cannot grow
 * and its size is the filesystem's.
 */
export function capacityHandlers(
  ctx: DotContext,
  pool: PoolControl | undefined,
): Pick<HandlerTable, 'CommitSizes' | 'PoolInfo' | 'GrowPool'> {
  const status = async (): Promise<PoolStatus> => {
    const info = await ctx.storage.poolInfo();
    const size = pool ? await pool.size() : { sizeBytes: null, growable: false };
    return {
      NodeId: ctx.nodeId,
      FormatVersion: info.formatVersion,
      SizeBytes: size.sizeBytes ?? info.totalBytes,
      TotalBytes: info.totalBytes,
      FreeBytes: info.freeBytes,
      Growable: size.growable,
    };
  };
  return {
    CommitSizes: async (caller, p) => branchCommitSizes(ctx, caller, { namespace: p.Namespace, name: p.Name, branch: p.Branch }),
    PoolInfo: async () => status(),
    GrowPool: async (_caller, p) => {
      if (!pool) throw new DotmeshError('UNSUPPORTED', 'This server cannot grow its pool (it has no pool file)');
      await pool.grow(p.SizeBytes);
      return status();
    },
  };
}
