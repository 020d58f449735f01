import { ADMIN_USER_ID } from '@dotmesh/core';
import type { TransferHost } from '@dotmesh/transfer';
import { type Caller, isAdmin } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import { LocalSide } from './local-side.ts';
import type { ReceiveDeps } from './receive-commit.ts';

/** The cluster itself, sending to its own nodes: admin's rights. */
const CLUSTER_CALLER: Caller = { id: ADMIN_USER_ID, name: 'admin', authMethod: 'internal' };

/**
 * This server as the host of the transfer engine (@dotmesh/transfer's ports): its side of a
 * transfer is LocalSide, whose every change to a dot runs through the mutation path.
 */
export function transferHost(ctx: DotContext, receive: Omit<ReceiveDeps, 'replica'>): TransferHost<Caller> {
  return {
    nodeId: ctx.nodeId,
    get driverKind() {
      return ctx.storage.kind;
    },
    logger: ctx.logger,
    failpoints: ctx.failpoints,
    clusterCaller: CLUSTER_CALLER,
    isAdmin,
    localSide: (caller, { replica, ...options }) => new LocalSide(ctx, caller, { ...receive, replica }, options),
    branchNames: (dotId, fsId) => {
      const dot = ctx.index.dots.get(dotId);
      const branch = ctx.index.branches.get(fsId);
      if (!dot || !branch) return undefined;
      return { namespace: dot.info.namespace, name: dot.info.name, branch: branch.label.branch };
    },
  };
}
