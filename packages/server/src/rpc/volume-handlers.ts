import { DotmeshError, deMasterify, ROOT_SUBDOT, validateFsId, validateName } from '@dotmesh/core';
import type { FoundCommit } from '@dotmesh/rpc';
import { describeUses } from '../cluster/publications.ts';
import { type Caller, canAccess, requireOwner } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import { deleteBranch } from '../dots/delete-branch.ts';
import { deleteCommit } from '../dots/delete-commit.ts';
import { resolveBranch } from '../dots/resolve.ts';
import type { HandlerTable } from './handlers.ts';

/** Entries of a dot's data that are not subdots. */
const NOT_SUBDOTS = new Set(['dotmesh.metadata']);

/**
 * Handlers of the methods volume managers (the CSI driver) need beyond the original's:
 * DeleteBranch, DeleteCommit, FindCommits, DeleteSubdot, Capacity and BranchById.
 */
export function volumeHandlers(
  ctx: DotContext,
): Pick<HandlerTable, 'DeleteBranch' | 'DeleteCommit' | 'FindCommits' | 'DeleteSubdot' | 'Capacity' | 'BranchById'> {
  return {
    DeleteBranch: async (caller, p) => {
      const r = await deleteBranch(ctx, caller, { namespace: p.Namespace, name: p.Name, branch: p.Branch });
      return { Deleted: r.deleted, Retired: r.retired, KeptCommits: r.keptCommits, Branches: r.branches };
    },
    DeleteCommit: async (caller, p) => {
      const r = await deleteCommit(ctx, caller, { fsId: p.FilesystemId, commitId: p.CommitId });
      return { Deleted: r.deleted, Hidden: r.hidden };
    },
    FindCommits: async (caller, p) => findCommits(ctx, caller, p.Key, p.Value),
    DeleteSubdot: async (caller, p) => {
      const { dot, fsId, branch } = resolveBranch(ctx, caller, p.Namespace, p.Name, p.Branch);
      const subdot = validateName('subdot', p.Subdot);
      if (subdot === ROOT_SUBDOT) {
        throw new DotmeshError('INVALID_ARGUMENT', `${ROOT_SUBDOT} is the whole dot, not a subdot`, {
          hint: 'delete the dot instead',
        });
      }
      requireOwner(caller, dot.info, `delete subdot ${subdot}`);
      const mounted = ctx.publications
        .of(fsId)
        ?.uses.filter((u) => u.kind === 'mount' && (u.subdot === subdot || u.subdot === ROOT_SUBDOT));
      if (mounted && mounted.length > 0) {
        throw new DotmeshError(
          'IN_USE',
          `Cannot delete subdot ${subdot} of ${dot.info.namespace}/${dot.info.name}@${branch}: ${describeUses(mounted)}`,
          { hint: 'unmount it first', data: { targets: mounted.map((u) => u.target) } },
        );
      }
      await ctx.storage.removeDirectory(fsId, subdot);
      const remaining = (await ctx.storage.listDirectory(fsId, '')).filter((n) => !NOT_SUBDOTS.has(n));
      ctx.logger.info({ fsId, subdot, remaining: remaining.length }, 'deleted a subdot');
      return { Remaining: remaining };
    },
    BranchById: async (caller, raw) => {
      const fsId = validateFsId(raw);
      const branch = ctx.view.branch(fsId);
      const dot = branch ? ctx.view.dot(branch.dotId) : undefined;
      if (!branch || !dot || ctx.view.isDeleted(fsId) || !canAccess(caller, dot)) {
        throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${fsId}'`, { hint: 'look the id up with Lookup' });
      }
      return {
        Id: fsId,
        DotId: dot.id,
        Namespace: dot.namespace,
        Name: dot.name,
        Branch: deMasterify(branch.name),
        Master: ctx.masterNodes.get(fsId)?.nodeId ?? '',
      };
    },
    Capacity: async () => {
      const own = await ctx.storage.poolInfo();
      const nodes: Record<string, { FreeBytes: number; TotalBytes: number }> = {
        [ctx.nodeId]: { FreeBytes: own.freeBytes, TotalBytes: own.totalBytes },
      };
      const live = new Set(ctx.view.nodes().map((n) => n.id));
      for (const [id, pool] of ctx.view.pools()) {
        if (id !== ctx.nodeId && live.has(id)) nodes[id] = { FreeBytes: pool.free_bytes, TotalBytes: pool.total_bytes };
      }
      return { FreeBytes: Math.min(...Object.values(nodes).map((n) => n.FreeBytes)), Nodes: nodes };
    },
  };
}

/** FindCommits: from the cluster view, so any node answers for every node's commits. */
function findCommits(ctx: Pick<DotContext, 'view'>, caller: Caller, key: string, value: string): FoundCommit[] {
  if (key === '') throw new DotmeshError('INVALID_ARGUMENT', 'Key cannot be empty', { hint: 'name a metadata field, e.g. type' });
  const out: FoundCommit[] = [];
  for (const { ref, commit } of ctx.view.heldCommits()) {
    if (commit.metadata[key] !== value || ctx.view.isCommitDeleted(ref) || ctx.view.isDeleted(ref.fsId)) continue;
    const branch = ctx.view.branch(ref.fsId);
    const dot = branch ? ctx.view.dot(branch.dotId) : undefined;
    if (!branch || !dot || ctx.view.isDeleted(dot.id) || !canAccess(caller, dot)) continue;
    out.push({
      Id: ref.commitId,
      FilesystemId: ref.fsId,
      DotId: dot.id,
      Namespace: dot.namespace,
      Name: dot.name,
      Branch: deMasterify(branch.name),
      Metadata: { ...commit.metadata },
    });
  }
  return out.sort((a, b) =>
    a.FilesystemId === b.FilesystemId ? a.Id.localeCompare(b.Id) : a.FilesystemId.localeCompare(b.FilesystemId),
  );
}
