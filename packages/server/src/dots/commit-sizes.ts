import type { CommitSizesResult } from '@dotmesh/rpc';
import type { CommitSizes } from '@dotmesh/storage';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import { resolveBranch } from './resolve.ts';

/**
 * The space of every commit in a branch's history, inherited commits included (they live in
 * the volume of the branch they were made on). Runs under the dot's shared lock, so no
 * rollback or delete of the dot removes a commit while it is measured. The driver caches
 * per volume; a commit the driver does not report (none today) shows 0.
 */
export async function branchCommitSizes(
  ctx: Pick<DotContext, 'index' | 'locks' | 'storage'>,
  caller: Caller,
  req: { namespace: unknown; name: unknown; branch: unknown },
): Promise<CommitSizesResult> {
  const { dot, fsId } = resolveBranch(ctx, caller, req.namespace, req.name, req.branch);
  return ctx.locks.shared(dot.id, async () => {
    const byVolume = new Map<string, Map<string, CommitSizes>>();
    const out: CommitSizesResult = {};
    for (const h of ctx.index.listedHistory(fsId)) {
      let sizes = byVolume.get(h.fsId);
      if (!sizes) {
        sizes = await ctx.storage.commitSizes(h.fsId);
        byVolume.set(h.fsId, sizes);
      }
      const s = sizes.get(h.commitId);
      out[h.commitId] = { ReferencedBytes: s?.referencedBytes ?? 0, ExclusiveBytes: s?.exclusiveBytes ?? 0 };
    }
    return out;
  });
}
