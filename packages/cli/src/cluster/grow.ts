import type { CommandContext } from '../context.ts';
import { prettySize } from '../format.ts';

/**
 * `dm cluster grow --pool-size SIZE`: grows the current remote's pool online. The CLI never
 * touches the pool: RPCs PoolInfo (the size before) then GrowPool, which the server runs.
 */
export interface ClusterGrowResult {
  nodeId: string;
  previousSizeBytes: number;
  sizeBytes: number;
  totalBytes: number;
  freeBytes: number;
}

export async function clusterGrow(ctx: CommandContext, sizeBytes: number): Promise<ClusterGrowResult> {
  const before = await ctx.call('PoolInfo', {});
  const after = await ctx.call('GrowPool', { SizeBytes: sizeBytes });
  return {
    nodeId: after.NodeId,
    previousSizeBytes: before.SizeBytes,
    sizeBytes: after.SizeBytes,
    totalBytes: after.TotalBytes,
    freeBytes: after.FreeBytes,
  };
}

export function renderClusterGrow(r: ClusterGrowResult): string[] {
  const what =
    r.sizeBytes === r.previousSizeBytes
      ? `The pool of ${r.nodeId} is already ${prettySize(r.sizeBytes)}.`
      : `Grew the pool of ${r.nodeId} from ${prettySize(r.previousSizeBytes)} to ${prettySize(r.sizeBytes)}.`;
  return [what, `Filesystem: ${prettySize(r.totalBytes)}, ${prettySize(r.freeBytes)} free.`];
}
