import {
  type CommitOrigin,
  DEFAULT_SUBDOT,
  DotmeshError,
  INITIAL_COMMIT_MESSAGE,
  INITIAL_COMMIT_TYPE,
  MASTER_BRANCH,
  validateName,
} from '@dotmesh/core';
import type { TxnOp } from '@dotmesh/store';
import { refuseIfPublished } from '../cluster/publications.ts';
import { KEYS } from '../cluster/store-keys.ts';
import { type Caller, canAccess, requireNamespaceAdmin, requireOwner } from './caller.ts';
import { type DotContext, timestampNs } from './context.ts';
import { DotIndex, type IndexedCommit } from './dot-index.ts';
import { type CommitMetaRecord, type DotInfo, newBranchLabel } from './labels.ts';
import {
  absent,
  claimBranch,
  dropAdvertisedKeys,
  dropOwnKeys,
  putHeldCommit,
  putRegistry,
  putTombstone,
} from './mutation/store-writes.ts';
import type { MutationTx } from './mutation/tx.ts';
import type { ContainerPaths } from './procure.ts';

export type CreateDeps = Pick<DotContext, 'index' | 'view' | 'mutations' | 'storage' | 'writeGuard' | 'logger' | 'now' | 'newId'>;

/**
 * Creates a dot on this node (its master): its master branch volume (with the `__default__`
 * subdot) and the "Initial commit". Steps: volume ─(create.after-volume)→ initial commit
 * ─(create.after-initial-commit)→ stored: the name (compared free), the master key, the held
 * commit ─(create.after-store)→ reply. A failure before the store write undoes the volume;
 * after a crash, a master volume without commits is a half-done create (recovery drops it) and
 * one with its initial commit is complete (recovery adopts it).
 */
export async function createDot(
  ctx: CreateDeps,
  caller: Caller,
  namespace: string,
  name: string,
  ownerOf?: () => Promise<string>,
): Promise<string> {
  validateName('namespace', namespace);
  validateName('dot', name);
  requireNamespaceAdmin(caller, namespace);
  const dotId = ctx.newId();
  // The caller, except when admin creates a dot in another user's namespace (see ownerOf).
  const ownerId = ownerOf ? await ownerOf() : caller.id;
  await ctx.mutations.run(
    { op: 'create', what: `create ${namespace}/${name}`, dotId, dotLock: 'exclusive', nameLock: nameLockKey(namespace, name) },
    (tx) =>
      materializeDot(ctx, tx, {
        dotId,
        info: { namespace, name, ownerId, collaboratorIds: [], createdAt: ctx.now().toISOString() },
        prepare: () => ctx.storage.ensureDirectory(dotId, DEFAULT_SUBDOT),
        firstCommit: { type: INITIAL_COMMIT_TYPE, message: INITIAL_COMMIT_MESSAGE, author: caller.name },
      }),
  );
  ctx.logger.info({ dotId, namespace, name }, 'created dot');
  return dotId;
}

export function nameLockKey(namespace: string, name: string): string {
  return `name:${DotIndex.nameKey(namespace, name)}`;
}

export function dotExists(
  namespace: string,
  name: string,
  hint = 'choose another name, or delete the existing dot first',
): DotmeshError {
  return new DotmeshError('DOT_EXISTS', `A dot named '${namespace}/${name}' already exists`, { hint });
}

/**
 * The steps of every new dot (createDot, forkDot), inside a mutation holding the name lock:
 * its master volume with its label (empty, or a writable copy of `from`)
 * ─(create.after-volume)→ `prepare` → its first commit ─(create.after-initial-commit)→ the
 * store: name (compared free), master key, held commit and state ─(create.after-store)→.
 */
export async function materializeDot(
  ctx: Pick<DotContext, 'index' | 'view' | 'mutations' | 'now' | 'newId'>,
  tx: MutationTx,
  o: {
    readonly dotId: string;
    readonly info: DotInfo;
    readonly from?: CommitOrigin;
    readonly prepare?: () => Promise<void>;
    /** Metadata of the first commit (a timestamp is added). */
    readonly firstCommit: Record<string, string>;
    readonly existsHint?: string;
  },
): Promise<void> {
  const { dotId, info } = o;
  const taken = ctx.index.dotIdByName(info.namespace, info.name) ?? ctx.view.dotByName(info.namespace, info.name)?.id;
  if (taken !== undefined) throw dotExists(info.namespace, info.name, o.existsHint);
  const label = newBranchLabel({ fsId: dotId, dotId, branch: MASTER_BRANCH, origin: null, createdAt: info.createdAt, dot: info });
  await tx.createVolume(label, o.from);
  tx.failpoint('create.after-volume');
  await o.prepare?.();
  const commitId = ctx.newId();
  const meta: CommitMetaRecord = { metadata: { ...o.firstCommit, timestamp: timestampNs(ctx.now()) }, parent: null };
  const info0 = await tx.commit(dotId, commitId, meta);
  tx.failpoint('create.after-initial-commit');
  const commit: IndexedCommit = { id: commitId, seq: info0.seq, meta };
  const nodeId = ctx.mutations.nodeId;
  const claim = claimBranch(nodeId, label, { head: { fsId: dotId, commitId }, commitCount: 1 });
  tx.storeCompare(absent(KEYS.registry(info.namespace, info.name)), ...claim.compare);
  tx.storeOps(putRegistry(dotId, info), ...claim.ops, putHeldCommit(nodeId, dotId, commit));
  tx.viewAddDot(dotId, info);
  tx.viewAddBranch(label, [commit]);
  tx.finish('create.after-store', async () => tx.failpoint('create.after-store'));
}

export type DeleteDeps = Pick<
  DotContext,
  'index' | 'view' | 'masterNodes' | 'mutations' | 'storage' | 'containers' | 'publications' | 'logger' | 'now'
>;

/**
 * Deletes a dot with all its branches. Owner or admin only; refused while containers use
 * any branch (IN_USE with `data.containers`, their names) or Kubernetes uses one
 * (BranchPublications). Steps: delete intent on the master
 * label (undone on failure) ─(delete.after-intent)→ stored: a tombstone per branch, the name,
 * clone records, master keys and this node's keys removed (the name is free from here)
 * ─(delete.after-store)→ branch volumes deleted ─(delete.after-branches)→ master volume deleted
 * → the dot's container_mnt links removed. Recovery finishes any dot whose master label carries
 * a delete intent, and start-up removes links no dot owns (container-links.ts). Deleting a dot
 * that does not exist fails (as the original).
 */
export async function deleteDot(
  ctx: DeleteDeps,
  caller: Caller,
  namespace: string,
  name: string,
  paths?: ContainerPaths,
): Promise<void> {
  validateName('namespace', namespace);
  validateName('dot', name);
  const dot = ctx.index.requireDot(namespace, name);
  if (!canAccess(caller, dot.info)) throw notFound(namespace, name);
  requireOwner(caller, dot.info, 'delete it');
  let links: string[] | undefined;
  await ctx.mutations.run(
    {
      op: 'delete',
      what: `delete ${namespace}/${name}`,
      dotId: dot.id,
      dotLock: 'exclusive',
      // The dot's master branch: its master node speaks for the dot (other branches' copies are
      // destroyed by their nodes when they see the tombstones).
      mastered: [dot.id],
      evenWhenFull: true,
    },
    async (tx) => {
      if (ctx.index.dots.get(dot.id) !== dot) throw notFound(namespace, name);
      // Every branch of the dot in the cluster, also those other nodes master: their containers
      // as their master nodes advertise them, their master keys and tombstones below.
      const allBranches = [...new Set([...dot.branches.values(), ...ctx.view.branchesOf(dot.id).values()])];
      const inUse: string[] = [];
      for (const fsId of allBranches) {
        const users = ctx.masterNodes.isMine(fsId) ? await ctx.containers.containersFor(fsId) : ctx.view.containersOf(fsId);
        for (const c of users) inUse.push(c.Name);
      }
      if (inUse.length > 0) {
        throw new DotmeshError('IN_USE', `Cannot delete ${namespace}/${name}: containers are using it: ${inUse.join(', ')}`, {
          hint: 'stop the containers first',
          data: { containers: inUse },
        });
      }
      for (const fsId of allBranches) refuseIfPublished(ctx.publications, fsId, `Cannot delete ${namespace}/${name}`);
      const master = ctx.index.requireBranch(dot.id);
      const fsIds = [...dot.branches.values()];
      await tx.writeIntent(master.label, { op: 'delete', opId: tx.newId() }, master.label);
      tx.failpoint('delete.after-intent');
      const ops = deleteDotOps(ctx, { dotId: dot.id, info: dot.info, fsIds: allBranches, username: caller.name });
      tx.storeOps(...ops.main);
      tx.storeFollowUps(...ops.followUps);
      tx.viewRemoveDot(dot.id);
      tx.finish('delete volumes', async () => {
        tx.failpoint('delete.after-store');
        await finishDelete(tx, dot.id, fsIds);
        const volumes = new Set(fsIds.map((id) => ctx.storage.volumePath(id)));
        links = (await paths?.removeDotLinks(namespace, name, volumes))?.map((l) => l.path);
      });
    },
  );
  ctx.logger.info({ dotId: dot.id, namespace, name, links }, 'deleted dot');
}

/** Branches whose tombstone and master key go into the delete's own transaction. */
const BRANCHES_IN_MAIN_TXN = 45;

/**
 * The store side of deleting a dot: a tombstone for each branch (every node destroys its copy
 * of a tombstoned id, also one that was down during the delete; the dot's own tombstone, its
 * master branch's, covers every branch), the name, the clone records and the master keys
 * (`main`, one transaction for up to BRANCHES_IN_MAIN_TXN branches), then this node's own keys,
 * what the branches' masters advertise of them, and the rest (`followUps`: recovery redoes them from the pool's delete intent).
 */
export function deleteDotOps(
  ctx: Pick<DotContext, 'mutations' | 'now'>,
  o: { readonly dotId: string; readonly info: DotInfo; readonly fsIds: readonly string[]; readonly username: string },
): { main: TxnOp[]; followUps: TxnOp[] } {
  const nodeId = ctx.mutations.nodeId;
  const at = ctx.now();
  const branchOps = (fsId: string): TxnOp[] => [
    putTombstone({ fsId, dotId: o.dotId, nodeId, username: o.username, info: o.info, branch: '', at }),
    { type: 'delete', key: KEYS.master(fsId) },
  ];
  const ordered = [o.dotId, ...o.fsIds.filter((id) => id !== o.dotId)];
  return {
    main: [
      { type: 'delete', key: KEYS.registry(o.info.namespace, o.info.name) },
      { type: 'deletePrefix', prefix: KEYS.clonesOf(o.dotId) },
      { type: 'delete', key: KEYS.durability(o.dotId) },
      ...ordered.slice(0, BRANCHES_IN_MAIN_TXN).flatMap(branchOps),
    ],
    followUps: [
      ...ordered.slice(BRANCHES_IN_MAIN_TXN).flatMap(branchOps),
      ...ordered.flatMap((fsId) => [...dropOwnKeys(nodeId, fsId), ...dropAdvertisedKeys(fsId)]),
    ],
  };
}

/** Deletes the branch volumes, then the master volume. Idempotent (recovery reuses it). */
export async function finishDelete(tx: MutationTx, dotId: string, fsIds: readonly string[]): Promise<void> {
  for (const fsId of fsIds) if (fsId !== dotId) await tx.destroyVolume(fsId);
  tx.failpoint('delete.after-branches');
  await tx.destroyVolume(dotId);
}

export function notFound(namespace: string, name: string): DotmeshError {
  return new DotmeshError('DOT_NOT_FOUND', `No such filesystem named '${namespace}/${name}'`, {
    hint: "list dots with 'dm list'",
  });
}
