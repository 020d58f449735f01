import { DotmeshError, MASTER_BRANCH } from '@dotmesh/core';
import type { IncomingVolume } from '@dotmesh/transfer';
import { KEYS } from '../cluster/store-keys.ts';
import type { ClusterView } from '../cluster/view.ts';
import { type Caller, canAccess, requireNamespaceAdmin } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import type { IndexedDot } from '../dots/dot-index.ts';
import { type BranchLabel, newBranchLabel } from '../dots/labels.ts';
import { absent, claimBranch, putBranchState } from '../dots/mutation/store-writes.ts';
import type { MutationTx } from '../dots/mutation/tx.ts';

/**
 * The local dot an incoming transfer writes to, after the checks every incoming write makes:
 * - a dot of that name with another id: refused (ids are global; the same dot has the same id);
 * - the dot exists: the caller must be its owner, a collaborator or admin, and its name here
 *   must be the one given;
 * - it does not exist: the caller must be the namespace's user (or admin); `undefined` is
 *   returned and the caller creates it with its first commit.
 */
export function incomingDot(ctx: Pick<DotContext, 'index'>, caller: Caller, v: IncomingVolume): IndexedDot | undefined {
  const { id, namespace, name } = v.dot;
  const byName = ctx.index.dotIdByName(namespace, name);
  const existing = ctx.index.dots.get(id);
  if (byName !== undefined && byName !== id) {
    const other = ctx.index.dots.get(byName);
    if (other && !canAccess(caller, other.info)) {
      throw new DotmeshError('PERMISSION_DENIED', `${namespace}/${name} belongs to another user`, {
        hint: 'push to a dot name in your own namespace',
      });
    }
    throw new DotmeshError(
      'CONFLICT',
      `Cannot reconcile filesystems with different ids, remote=${id}, local=${byName} (${namespace}/${name} is another dot here)`,
      {
        hint: 'choose another name on this side (--remote-name / --local-name), or delete one of them',
        data: { namespace, name, incomingDotId: id, dotId: byName },
      },
    );
  }
  if (existing) {
    if (!canAccess(caller, existing.info)) {
      throw new DotmeshError('PERMISSION_DENIED', `${namespace}/${name} belongs to another user`, {
        hint: 'ask its owner to add you as a collaborator',
      });
    }
    if (existing.info.namespace !== namespace || existing.info.name !== name) {
      const here = `${existing.info.namespace}/${existing.info.name}`;
      throw new DotmeshError(
        'CONFLICT',
        `${namespace}/${name} would be a second copy of ${here}: the receiving side has this dot already, as ${here}`,
        {
          hint: `transfer into ${here} instead (a pull into ${here} rather than a clone; --remote-name ${here} for a push)`,
          data: {
            dotId: id,
            existing: { namespace: existing.info.namespace, name: existing.info.name },
            requested: { namespace, name },
          },
        },
      );
    }
    return existing;
  }
  requireNamespaceAdmin(caller, namespace);
  return undefined;
}

/**
 * Inside a receive mutation: makes sure the volume exists here with the given identity. A
 * missing non-master branch is created from its origin (which must be here) and claimed in the
 * mutation's store write (clone record, master key: this node) — or, for a `replica`, only
 * advertised as this node's inactive copy; a missing master volume is created but claimed only
 * with its first commit (receiveCommit), so a dot appears with it. Both are undone with the
 * mutation. Caller holds the dot lock exclusively. A replica refuses a dot or branch that was
 * deleted (refuseDeleted).
 */
export async function ensureVolume(
  ctx: Pick<DotContext, 'index' | 'view' | 'storage' | 'mutations' | 'logger' | 'now'>,
  tx: MutationTx,
  v: IncomingVolume,
  dot: IndexedDot | undefined,
  ownerId: string,
  replica = false,
): Promise<{ label: BranchLabel; created: boolean }> {
  if (replica) refuseDeleted(ctx.view, tx, v);
  const known = ctx.index.branches.get(v.fsId);
  if (known) {
    if (known.label.dotId !== v.dot.id || known.label.branch !== v.branch) {
      throw new DotmeshError(
        'CONFLICT',
        `filesystem ${v.fsId} is branch ${known.label.branch} of another dot or name here (expected ${v.branch} of ${v.dot.id})`,
      );
    }
    return { label: known.label, created: false };
  }
  let originCount = 0;
  if (v.branch !== MASTER_BRANCH) {
    if (!dot) throw new DotmeshError('CONFLICT', `branch ${v.branch} arrived before the master branch of ${v.dot.id}`);
    const clash = dot.branches.get(v.branch);
    if (clash !== undefined) {
      throw new DotmeshError(
        'CONFLICT',
        `${dot.info.namespace}/${dot.info.name} already has a branch ${v.branch} with another id (${clash}, incoming ${v.fsId})`,
        { hint: 'rename or delete one of the two branches' },
      );
    }
    if (!v.origin || !ctx.index.findCommit(v.origin)) {
      throw new DotmeshError('COMMIT_NOT_FOUND', `the origin commit of branch ${v.branch} (${v.origin?.commitId}) is not here`);
    }
    originCount = ctx.index.listedHistoryFrom(v.origin).length;
  }
  const now = ctx.now().toISOString();
  const fresh = newBranchLabel({
    fsId: v.fsId,
    dotId: v.dot.id,
    branch: v.branch,
    origin: v.origin,
    createdAt: now,
    ...(v.branch === MASTER_BRANCH
      ? { dot: { namespace: v.dot.namespace, name: v.dot.name, ownerId, collaboratorIds: [], createdAt: now } }
      : {}),
  });
  const label: BranchLabel = replica ? { ...fresh, replica: true } : fresh;
  try {
    await tx.createVolume(label, v.origin ?? undefined);
  } catch (e) {
    // A master volume a crashed earlier attempt left without commits (never claimed): reuse it.
    if (!(e instanceof DotmeshError && e.code === 'CONFLICT' && v.branch === MASTER_BRANCH)) throw e;
    if ((await ctx.storage.listCommits(v.fsId)).length > 0) throw e;
    await tx.relabelEmptyVolume(label);
  }
  if (v.branch !== MASTER_BRANCH) {
    if (replica) {
      tx.storeOps(putBranchState(ctx.mutations.nodeId, v.fsId, { head: v.origin, commitCount: originCount, active: false }));
    } else {
      const claim = claimBranch(ctx.mutations.nodeId, label, { head: v.origin, commitCount: originCount });
      tx.storeCompare(...claim.compare);
      tx.storeOps(...claim.ops);
    }
    tx.viewAddBranch(label, []);
  }
  ctx.logger.info({ dotId: v.dot.id, fsId: v.fsId, branch: v.branch }, 'creating a volume for an incoming transfer');
  return { label, created: true };
}

/**
 * Replication never brings a deleted dot or branch back: a replica refuses commits for an id a
 * tombstone names (`filesystems/deleted/<id>`), and its store write is fenced on the tombstones'
 * absence, so a delete that lands while the commit arrives fails the receive (undone) rather
 * than leave a copy nobody destroys.
 */
function refuseDeleted(view: Pick<ClusterView, 'isDeleted'>, tx: MutationTx, v: IncomingVolume): void {
  for (const id of new Set([v.dot.id, v.fsId])) {
    if (view.isDeleted(id)) {
      throw new DotmeshError(
        'DOT_NOT_FOUND',
        `${v.dot.namespace}/${v.dot.name} (filesystem ${id}) was deleted: no replica of it is kept`,
        {
          hint: 'nothing to do: the master of a deleted dot or branch no longer sends it',
          data: { fsId: id },
        },
      );
    }
    tx.storeCompare(absent(KEYS.deleted(id)));
  }
}
