import { parseBackup } from '@dotmesh/rpc';
import type { Store } from '@dotmesh/store';
import type { Authenticator } from '../auth/authenticator.ts';
import type { UserService } from '../auth/users.ts';
import { checkBackupPrefix, dumpStore, registryMismatches, restoreMasters, restoreUsers } from '../backup/etcd-backup.ts';
import type { DotContext } from '../dots/context.ts';
import type { HandlerTable } from './handlers.ts';

export interface BackupHandlerDeps {
  readonly ctx: DotContext;
  readonly store: Store;
  readonly users: UserService;
  readonly auth: Authenticator;
}

/**
 * DumpEtcd and RestoreEtcd (admin only, by the method table), for whichever store the server
 * runs on. See backup/etcd-backup.ts for what a restore writes and what it only checks.
 */
export function backupHandlers(deps: BackupHandlerDeps): Pick<HandlerTable, 'DumpEtcd' | 'RestoreEtcd'> {
  const { ctx, store, users, auth } = deps;
  return {
    DumpEtcd: async (_caller, p) => {
      checkBackupPrefix(p.Prefix);
      return dumpStore(store, ctx.now());
    },
    RestoreEtcd: async (caller, p) => {
      checkBackupPrefix(p.Prefix);
      const dump = parseBackup(p.Dump);
      const restored = await restoreUsers(users, dump);
      for (const id of restored) auth.forget(id);
      const mismatches = registryMismatches(ctx.index, dump);
      for (const mismatch of mismatches) ctx.logger.warn({ restore: true }, `RestoreEtcd: ${mismatch} (the pool wins)`);
      const masterNodes = await restoreMasters(store, ctx.masterNodes, dump);
      for (const m of masterNodes) {
        ctx.logger.info(
          { restore: true, fsId: m.fsId, node: m.nodeId, dumpNode: m.dumpNodeId },
          m.nodeId === m.dumpNodeId
            ? 'RestoreEtcd: restored a master key the store lacked'
            : 'RestoreEtcd: restored a master key the store lacked, for the node that holds the branch (the dump names a node that does not)',
        );
      }
      ctx.logger.info(
        {
          by: caller.name,
          users: restored.length,
          masterNodes: masterNodes.length,
          created: dump.created,
          mismatches: mismatches.length,
        },
        'RestoreEtcd: users restored; dots and branches come from the pool, masters only where the store had none',
      );
      return true;
    },
  };
}
