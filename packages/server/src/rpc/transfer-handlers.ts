import { DotmeshError, FS_ID_PATTERN, validateFsId, validateName } from '@dotmesh/core';
import type { TransferEngine } from '@dotmesh/transfer';
import { type Caller, canAccess, requireNamespaceAdmin } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import { forkDot } from '../dots/fork.ts';
import { resolveBranch } from '../dots/resolve.ts';
import { requireVisibleFs } from '../dots/views.ts';
import { pathToTopLevel } from '../transfer/path.ts';
import { stashAfter } from '../transfer/stash.ts';
import type { HandlerTable } from './handlers.ts';

type TransferMethods =
  | 'Transfer'
  | 'GetTransfer'
  | 'RegisterTransfer'
  | 'DeducePathToTopLevelFilesystem'
  | 'RegisterFilesystem'
  | 'PredictSize'
  | 'StashAfter'
  | 'Fork';

/**
 * Handlers of the push/pull/clone methods. Transfers themselves run in the TransferEngine;
 * RegisterTransfer and RegisterFilesystem are what an original initiator calls on its peer
 * before a push: ours needs neither (a pushed commit carries where it belongs), so they only
 * check the caller's rights and answer as the original did.
 */
export function transferHandlers(deps: {
  readonly ctx: DotContext;
  readonly transfers: TransferEngine<Caller>;
  readonly ownerOf: (caller: Caller, namespace: string) => Promise<string>;
}): Pick<HandlerTable, TransferMethods> {
  const { ctx, transfers } = deps;
  return {
    Transfer: async (caller, p) => transfers.start(caller, p),
    GetTransfer: async (caller, id) => transfers.get(caller, id.slice(0, 100)),
    RegisterTransfer: async (caller, p) => {
      if (p.FilesystemId !== '') requireVisibleFs(ctx, caller, p.FilesystemId);
      else requireNamespaceAdmin(caller, validateName('namespace', p.RemoteNamespace));
      return true;
    },
    DeducePathToTopLevelFilesystem: async (caller, p) => {
      const r = resolveBranch(ctx, caller, p.RemoteNamespace, p.RemoteFilesystemName, p.RemoteCloneName);
      return pathToTopLevel(ctx, r.dot, r.fsId);
    },
    RegisterFilesystem: async (caller, p) => {
      const namespace = validateName('namespace', p.Namespace);
      const name = validateName('dot', p.TopLevelFilesystemName);
      const fsId = validateFsId(p.FilesystemId);
      const existing = ctx.index.dotIdByName(namespace, name);
      if (existing === undefined) {
        requireNamespaceAdmin(caller, namespace);
        return true;
      }
      const dot = ctx.index.dots.get(existing);
      if (!dot || !canAccess(caller, dot.info)) requireNamespaceAdmin(caller, namespace);
      if (existing !== fsId && !dot?.branches.has(p.CloneName || 'master')) {
        throw new DotmeshError('CONFLICT', `Cannot reconcile filesystems with different ids, remote=${fsId}, local=${existing}`);
      }
      return true;
    },
    PredictSize: async (caller, p) => {
      const to = requireVisibleFs(ctx, caller, p.ToFilesystemId);
      const commitId = validateName('commit', p.ToSnapshotId);
      const full = p.FromSnapshotId === '' || p.FromSnapshotId === 'START';
      const side = transfers.localSide(caller);
      const parent = full
        ? null
        : {
            fsId: FS_ID_PATTERN.test(p.FromFilesystemId) ? p.FromFilesystemId : to,
            commitId: validateName('commit', p.FromSnapshotId),
          };
      return side.predictSize(to, commitId, parent);
    },
    StashAfter: async (caller, p) => {
      const fsId = requireVisibleFs(ctx, caller, p.FilesystemId);
      return stashAfter(ctx, caller, fsId, p.SnapshotId === '' ? null : validateName('commit', p.SnapshotId));
    },
    Fork: async (caller, p) =>
      forkDot(ctx, caller, { parentId: p.MasterBranchID, namespace: p.ForkNamespace, name: p.ForkName }, (ns) =>
        deps.ownerOf(caller, ns),
      ),
  };
}
