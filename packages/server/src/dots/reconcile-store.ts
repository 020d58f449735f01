import { MASTER_BRANCH } from '@dotmesh/core';
import type { Store, TxnOp } from '@dotmesh/store';
import { type CloneRecord, KEYS, parseValue, type RegistryRecord } from '../cluster/store-keys.ts';
import type { DotContext } from './context.ts';
import { deleteDotOps } from './create-delete.ts';
import type { IndexedDot } from './dot-index.ts';
import type { BranchLabel } from './labels.ts';
import { TXN_OPS } from './mutation/mutations.ts';
import {
  absent,
  putBranchState,
  putClone,
  putDeletedCommit,
  putHeldCommit,
  putMaster,
  putRegistry,
} from './mutation/store-writes.ts';
import type { MutationTx } from './mutation/tx.ts';
import { recoveredName } from './reconcile.ts';

type Note = (msg: string, data?: Record<string, unknown>) => void;
type PublishContext = Pick<DotContext, 'index' | 'mutations' | 'masterNodes' | 'logger' | 'now'>;

/**
 * The store half of start-up recovery, after the pool half rebuilt the index. It touches only
 * what this node is responsible for:
 *
 * - deletes it finished from the pool are finished in the store too (tombstones, name, keys);
 * - tombstoned ids: its copies are destroyed (a delete made while it was down);
 * - cluster keys of what it holds and the store lacks are claimed (compare-and-create): a name,
 *   a clone record, a master key. A name the store gives to another id is never taken: the
 *   local dot is renamed `<name>-RECOVERED-<id>` instead. Records of branches it masters are
 *   rewritten from the pool when they differ (the pool is the truth for what it masters);
 * - master keys naming this node for branches it does not hold are removed;
 * - its own keys (held commits, branch states) are rewritten from the pool under its current
 *   lease, and the ones of commits or volumes it no longer holds are removed.
 */
export async function publishFromPool(
  ctx: PublishContext,
  tx: MutationTx,
  store: Store,
  o: { readonly deletedDots: ReadonlyArray<{ label: BranchLabel; fsIds: string[] }>; readonly note: Note },
): Promise<void> {
  const { note } = o;
  const nodeId = ctx.mutations.nodeId;
  await ctx.masterNodes.load(store);
  for (const d of o.deletedDots) await finishDeleteInStore(ctx, store, d, note);
  await destroyTombstoned(ctx, tx, store, note);
  for (const dot of [...ctx.index.dots.values()]) await claimDot(ctx, tx, store, dot, note);
  for (const fsId of ctx.masterNodes.mine()) {
    if (ctx.index.branches.has(fsId)) continue;
    await store.txn({
      compare: [{ key: KEYS.master(fsId), target: 'modRevision', op: '==', value: ctx.masterNodes.get(fsId)!.revision }],
      success: [{ type: 'delete', key: KEYS.master(fsId) }],
    });
    ctx.masterNodes.delete(fsId);
    note(`store: dropped ${KEYS.master(fsId)} (not in the pool)`);
  }
  await publishOwnKeys(ctx, store, nodeId);
}

async function finishDeleteInStore(
  ctx: PublishContext,
  store: Store,
  d: { label: BranchLabel; fsIds: string[] },
  note: Note,
): Promise<void> {
  const info = d.label.dot;
  const master = ctx.masterNodes.get(d.label.dotId);
  if (!info || (master && master.nodeId !== ctx.mutations.nodeId)) return;
  const reg = parseValue<RegistryRecord>((await store.get(KEYS.registry(info.namespace, info.name)))?.value);
  const ops = deleteDotOps(ctx, { dotId: d.label.dotId, info, fsIds: d.fsIds, username: 'system' });
  // The name may have been taken by another dot since: then it is not ours to remove.
  const main =
    reg && reg.Id !== d.label.dotId
      ? ops.main.filter((op) => !('key' in op && op.key.startsWith(KEYS.registryPrefix)))
      : ops.main;
  await applyChunked(store, [...main, ...ops.followUps]);
  for (const fsId of d.fsIds) ctx.masterNodes.delete(fsId);
  note(`store: finished the interrupted delete of ${info.namespace}/${info.name} (${d.label.dotId})`);
}

async function destroyTombstoned(ctx: PublishContext, tx: MutationTx, store: Store, note: Note): Promise<void> {
  const { kvs } = await store.range(KEYS.deletedPrefix);
  const tombstones = new Set(kvs.map((kv) => kv.key.slice(KEYS.deletedPrefix.length)));
  for (const dot of [...ctx.index.dots.values()]) {
    if (tombstones.has(dot.id)) {
      const fsIds = [...dot.branches.values()];
      for (const fsId of fsIds) if (fsId !== dot.id) await tx.destroyVolume(fsId);
      await tx.destroyVolume(dot.id);
      ctx.index.removeDot(dot.id);
      note(`destroyed this node's copy of ${dot.info.namespace}/${dot.info.name} (${dot.id}): it was deleted`, { dotId: dot.id });
      continue;
    }
    for (const [branch, fsId] of [...dot.branches]) {
      if (!tombstones.has(fsId)) continue;
      await tx.destroyVolume(fsId);
      ctx.index.removeBranch(fsId);
      note(`destroyed this node's copy of branch ${branch} of ${dot.info.namespace}/${dot.info.name} (${fsId}): it was deleted`);
    }
  }
}

/** Claims or refreshes the cluster keys of one dot this node holds. */
async function claimDot(ctx: PublishContext, tx: MutationTx, store: Store, dot: IndexedDot, note: Note): Promise<void> {
  const nodeId = ctx.mutations.nodeId;
  const masterOfDot = ctx.masterNodes.get(dot.id);
  const mastersDot = masterOfDot === undefined || masterOfDot.nodeId === nodeId;
  const regKey = KEYS.registry(dot.info.namespace, dot.info.name);
  const reg = await store.get(regKey);
  const record = parseValue<RegistryRecord>(reg?.value);
  if (reg && record?.Id !== dot.id) return claimDot(ctx, tx, store, await renameDot(ctx, tx, dot, note), note);
  const wanted = putRegistry(dot.id, dot.info) as Extract<TxnOp, { type: 'put' }>;
  if (!reg) {
    if (await claim(store, regKey, wanted)) note(`store: adopted ${regKey} from the pool`);
    else return claimDot(ctx, tx, store, dot, note); // taken meanwhile: look again
  } else if (mastersDot && !sameJson(reg.value, wanted.value)) {
    await store.put(regKey, wanted.value);
    note(`store: updated ${regKey} from the pool`);
  }
  for (const [branch, fsId] of dot.branches) {
    const label = ctx.index.requireBranch(fsId).label;
    if (branch !== MASTER_BRANCH) await claimClone(ctx, store, label, note);
    // A replica (its branch was handed to another node) never claims: when the store is lost,
    // the master's copy must win, not an older one.
    if (!ctx.masterNodes.get(fsId) && label.replica !== true) {
      const put = putMaster(fsId, nodeId) as Extract<TxnOp, { type: 'put' }>;
      if (await claim(store, put.key, put)) note(`store: adopted ${put.key} from the pool`);
      const kv = await store.get(put.key);
      if (kv) ctx.masterNodes.applyPut(kv.key, kv.value, kv.modRevision);
    }
  }
  await dropStaleNames(ctx, store, dot, note);
  await claimDeletedCommits(ctx, store, dot, note);
}

/**
 * Commits the pool marks deleted (a DeleteCommit cut before its store write) get their
 * tombstone, on the branch's master, so that no node lists them.
 */
async function claimDeletedCommits(ctx: PublishContext, store: Store, dot: IndexedDot, note: Note): Promise<void> {
  for (const fsId of dot.branches.values()) {
    const label = ctx.index.requireBranch(fsId).label;
    if (!ctx.masterNodes.isMine(fsId)) continue;
    for (const commitId of label.deletedCommits ?? []) {
      const put = putDeletedCommit({
        fsId,
        commitId,
        nodeId: ctx.mutations.nodeId,
        username: 'system',
        at: ctx.now(),
      }) as Extract<TxnOp, { type: 'put' }>;
      if (await claim(store, put.key, put)) note(`store: adopted ${put.key} from the pool`);
    }
  }
}

/**
 * Clone records of this dot that name a branch this node masters under a name its label no
 * longer has (a delete that retired the branch, cut before its store write): removed, so the
 * old name is free as the pool says.
 */
async function dropStaleNames(ctx: PublishContext, store: Store, dot: IndexedDot, note: Note): Promise<void> {
  for (const kv of (await store.range(KEYS.clonesOf(dot.id))).kvs) {
    const record = parseValue<CloneRecord>(kv.value);
    const label = record ? ctx.index.branches.get(record.FilesystemId)?.label : undefined;
    if (!label || label.dotId !== dot.id || !ctx.masterNodes.isMine(label.fsId)) continue;
    if (kv.key === KEYS.clone(dot.id, label.branch)) continue;
    await store.txn({
      compare: [{ key: kv.key, target: 'modRevision', op: '==', value: kv.modRevision }],
      success: [{ type: 'delete', key: kv.key }],
    });
    note(`store: dropped ${kv.key} (branch ${label.fsId} is named ${label.branch} in the pool)`);
  }
}

async function claimClone(ctx: PublishContext, store: Store, label: BranchLabel, note: Note): Promise<void> {
  const key = KEYS.clone(label.dotId, label.branch);
  const wanted = putClone(label) as Extract<TxnOp, { type: 'put' }>;
  const kv = await store.get(key);
  const record = parseValue<CloneRecord>(kv?.value);
  if (!kv) {
    if (await claim(store, key, wanted)) note(`store: adopted ${key} from the pool`);
  } else if (record?.FilesystemId === label.fsId && ctx.masterNodes.isMine(label.fsId) && !sameJson(kv.value, wanted.value)) {
    await store.put(key, wanted.value);
    note(`store: updated ${key} from the pool`);
  } else if (record?.FilesystemId !== label.fsId) {
    ctx.logger.warn(
      { key, fsId: label.fsId, other: record?.FilesystemId },
      'another branch of this dot has this name in the store',
    );
  }
}

/** The store gives the dot's name to another id: this copy takes a RECOVERED name instead. */
async function renameDot(ctx: PublishContext, tx: MutationTx, dot: IndexedDot, note: Note): Promise<IndexedDot> {
  const master = ctx.index.requireBranch(dot.id);
  const info = { ...dot.info, name: recoveredName(dot.info.name, dot.id) };
  const label: BranchLabel = { ...master.label, dot: info };
  await tx.rewriteLabel(label);
  const branches = [...dot.branches.values()].map((fsId) => ctx.index.requireBranch(fsId));
  ctx.index.removeDot(dot.id);
  ctx.index.addDot(dot.id, info);
  for (const b of branches) ctx.index.addBranch(b.label.fsId === dot.id ? label : b.label, b.commits);
  note(
    `renamed dot ${dot.info.namespace}/${dot.info.name} (${dot.id}) to ${info.name}: the store gives the name to another dot`,
    {
      dotId: dot.id,
    },
  );
  return ctx.index.dots.get(dot.id)!;
}

/** Rewrites this node's own keys from the index under its current lease (also after a new lease). */
export async function publishOwnKeys(ctx: PublishContext, store: Store, nodeId: string): Promise<void> {
  const wanted = new Map<string, string>();
  for (const [fsId, b] of ctx.index.branches) {
    if (!ctx.index.dots.has(b.label.dotId)) continue;
    for (const c of b.commits) {
      const op = putHeldCommit(nodeId, fsId, c) as Extract<TxnOp, { type: 'put' }>;
      wanted.set(op.key, op.value);
    }
    const head = ctx.index.head(fsId);
    const op = putBranchState(nodeId, fsId, {
      head,
      commitCount: ctx.index.listedHistory(fsId).length,
      active: ctx.masterNodes.isMine(fsId),
    }) as Extract<TxnOp, { type: 'put' }>;
    wanted.set(op.key, op.value);
  }
  const existing = new Map<string, string>();
  for (const prefix of [KEYS.nodeCommits(nodeId), KEYS.nodeStates(nodeId)]) {
    for (const kv of (await store.range(prefix)).kvs) existing.set(kv.key, kv.value);
  }
  const lease = ctx.mutations.leaseId;
  const ops: TxnOp[] = [
    ...[...existing.keys()].filter((k) => !wanted.has(k)).map((key): TxnOp => ({ type: 'delete', key })),
    // Every key is written again, unchanged ones too: that binds them to the current lease.
    ...[...wanted].map(([key, value]): TxnOp => ({ type: 'put', key, value, lease })),
  ];
  await applyChunked(store, ops);
  const changed = [...wanted].filter(([k, v]) => existing.get(k) !== v).length;
  const removed = [...existing.keys()].filter((k) => !wanted.has(k)).length;
  ctx.logger.info({ keys: wanted.size, changed, removed }, 'advertised what this node holds');
}

/** Creates `key` with the put's value if it does not exist; true when this call created it. */
async function claim(store: Store, key: string, put: Extract<TxnOp, { type: 'put' }>): Promise<boolean> {
  const r = await store.txn({ compare: [absent(key)], success: [put] });
  return r.succeeded;
}

async function applyChunked(store: Store, ops: readonly TxnOp[]): Promise<void> {
  for (let i = 0; i < ops.length; i += TXN_OPS) await store.txn({ compare: [], success: ops.slice(i, i + TXN_OPS) });
}

function sameJson(a: string, b: string): boolean {
  try {
    return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
  } catch {
    return false;
  }
}
