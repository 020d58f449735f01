import type { Readable } from 'node:stream';
import { type CommitOrigin, DotmeshError, validateFsId, validateName } from '@dotmesh/core';
import type { Caller } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import type { IndexedCommit } from '../dots/dot-index.ts';
import { type BranchLabel, parseCommitMeta } from '../dots/labels.ts';
import { refuseIfInUse } from '../dots/rollback.ts';
import { ensureVolume, type IncomingVolume, incomingDot, parseIncomingVolume, parseOrigin } from './incoming.ts';

/** One commit arriving from a peer: where it goes, its id and its history parent. */
export interface IncomingCommit {
  readonly volume: IncomingVolume;
  readonly commitId: string;
  readonly parent: CommitOrigin | null;
  /** The branch the transfer is about: its volume takes every commit as its new head. */
  readonly targetFsId: string;
}

export function parseIncomingCommit(raw: unknown): IncomingCommit {
  const o = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  return {
    volume: parseIncomingVolume(o.volume),
    commitId: validateName('commit', o.commitId),
    parent: parseOrigin(o.parent, 'parent'),
    targetFsId: validateFsId(o.targetFsId, 'targetFsId'),
  };
}

export interface ReceiveDeps {
  /** The owner of a dot created by an incoming transfer in `namespace`. */
  readonly ownerOf: (caller: Caller, namespace: string) => Promise<string>;
}

/**
 * Applies one commit stream (the driver's format, already unframed and checksummed by the
 * caller's pipeline) to this server, under the dot's exclusive lock:
 *
 * - the commit goes into its volume (created if missing, see ensureVolume);
 * - in the transfer's target branch it must extend the branch's head and becomes the new head:
 *   the live state follows it (refused while processes hold the live data);
 * - in another volume (an ancestor on the branch's path) it becomes that branch's head only
 *   when it extends it (fast-forward); otherwise it is kept hidden, for lineage only;
 * - a commit already here (hidden) is not received again: it is only made visible if needed.
 *
 * Steps (the label is the redo log): label with a rollback intent to the new commit (or the
 * commit listed hidden) ─(receive.after-intent)→ stream imported: visible in the pool only
 * once whole and checked ─(receive.after-import)→ live swapped ─→ label without intent
 * ─(receive.after-label)→ indexed and mirrored. Recovery redoes a rollback intent whose commit
 * arrived and drops one whose commit did not.
 */
export async function receiveCommit(
  ctx: DotContext,
  deps: ReceiveDeps,
  caller: Caller,
  c: IncomingCommit,
  stream: Readable,
): Promise<{ visible: boolean; skipped: boolean }> {
  const v = c.volume;
  ctx.writeGuard.assertWritable(`receive into ${v.dot.namespace}/${v.dot.name}`);
  incomingDot(ctx, caller, v); // early refusal, before taking the lock
  return ctx.locks.exclusive(v.dot.id, () =>
    ctx.queues.run(v.fsId, async () => {
      const dot = incomingDot(ctx, caller, v);
      const owner = dot ? dot.info.ownerId : await deps.ownerOf(caller, v.dot.namespace);
      const { label: startLabel, created } = await ensureVolume(ctx, v, dot, owner);
      try {
        return await applyCommit(ctx, c, startLabel, stream);
      } catch (e) {
        // A dot or branch this call created for a first commit that failed must not half-exist.
        if (created && (ctx.index.branches.get(v.fsId)?.commits.length ?? 0) === 0) {
          ctx.index.removeBranch(v.fsId);
          await ctx.driver.deleteVolume(v.fsId).catch(() => undefined);
          if (ctx.index.dots.has(v.dot.id)) await ctx.mirror.syncDot(v.dot.id).catch(() => undefined);
        }
        throw e;
      }
    }),
  );
}

async function applyCommit(
  ctx: DotContext,
  c: IncomingCommit,
  startLabel: BranchLabel,
  stream: Readable,
): Promise<{ visible: boolean; skipped: boolean }> {
  const v = c.volume;
  const state = ctx.index.branches.get(v.fsId);
  const head = state ? ctx.index.head(v.fsId) : v.origin;
  const extendsHead = sameRef(head, c.parent);
  const isTarget = v.fsId === c.targetFsId;
  if (isTarget && !extendsHead) {
    throw new DotmeshError(
      'CONFLICT',
      `branch ${v.branch} of ${v.dot.namespace}/${v.dot.name} moved here during the transfer (its head is ${head?.commitId ?? 'none'}, the incoming commit ${c.commitId} follows ${c.parent?.commitId ?? 'nothing'})`,
      { hint: 'run the transfer again' },
    );
  }
  if (c.parent && !ctx.index.findCommit(c.parent)) {
    throw new DotmeshError('COMMIT_NOT_FOUND', `the parent ${c.parent.commitId} of incoming commit ${c.commitId} is not here`);
  }
  const visible = isTarget || extendsHead;
  const held = state?.commits.find((x) => x.id === c.commitId);
  if (held) {
    // Already here (kept hidden, e.g. after a rollback): make it visible again if it must be.
    if (!visible || !startLabel.hiddenCommits.includes(c.commitId)) return { visible, skipped: true };
    await switchLive(
      ctx,
      v.fsId,
      { ...startLabel, hiddenCommits: startLabel.hiddenCommits.filter((x) => x !== c.commitId) },
      c.commitId,
    );
    await ctx.mirror.syncDot(v.dot.id);
    return { visible, skipped: true };
  }
  if (isTarget) await refuseIfInUse(ctx, v.fsId, `${v.dot.namespace}/${v.dot.name}`);
  const to = { fsId: v.fsId, commitId: c.commitId };
  const pre: BranchLabel = visible
    ? { ...startLabel, intent: { op: 'rollback', to, opId: ctx.newId() } }
    : { ...startLabel, hiddenCommits: [...startLabel.hiddenCommits, c.commitId] };
  await ctx.driver.writeLabel(v.fsId, { ...pre });
  ctx.failpoints.hit('receive.after-intent');
  let info: Awaited<ReturnType<typeof ctx.driver.importCommit>>;
  try {
    info = await ctx.driver.importCommit(
      v.fsId,
      stream,
      c.parent ? { parent: { volumeId: c.parent.fsId, commitId: c.parent.commitId } } : {},
    );
    const meta = parseCommitMeta(info.meta);
    if (info.id !== c.commitId || !sameRef(meta.parent, c.parent)) {
      await ctx.driver.deleteCommit(v.fsId, info.id);
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `the stream for commit ${c.commitId} held commit ${info.id} with parent ${meta.parent?.commitId ?? 'none'} (expected ${c.parent?.commitId ?? 'none'})`,
      );
    }
  } catch (e) {
    await ctx.driver.writeLabel(v.fsId, { ...startLabel }).catch(() => undefined);
    throw e;
  }
  ctx.failpoints.hit('receive.after-import');
  const indexed: IndexedCommit = { id: info.id, seq: info.seq, meta: parseCommitMeta(info.meta) };
  const { intent: _intent, ...finalLabel } = pre;
  if (visible) {
    await ctx.driver.rollback(v.fsId, { volumeId: v.fsId, commitId: c.commitId });
    await ctx.driver.writeLabel(v.fsId, { ...finalLabel });
  }
  ctx.failpoints.hit('receive.after-label');
  if (!ctx.index.dots.has(v.dot.id)) ctx.index.addDot(v.dot.id, finalLabel.dot!);
  const indexedBranch = ctx.index.branches.get(v.fsId);
  if (indexedBranch) {
    indexedBranch.commits.push(indexed);
    indexedBranch.label = finalLabel as BranchLabel;
  } else {
    ctx.index.addBranch(finalLabel as BranchLabel, [indexed]);
  }
  await ctx.mirror.syncDot(v.dot.id);
  ctx.logger.info({ fsId: v.fsId, commitId: c.commitId, visible }, 'received commit');
  return { visible, skipped: false };
}

/** Moves a branch's live state to one of its commits under a rollback intent, then clears it. */
async function switchLive(ctx: DotContext, fsId: string, label: BranchLabel, commitId: string): Promise<void> {
  const to = { fsId, commitId };
  await ctx.driver.writeLabel(fsId, { ...label, intent: { op: 'rollback', to, opId: ctx.newId() } });
  await ctx.driver.rollback(fsId, { volumeId: fsId, commitId });
  await ctx.driver.writeLabel(fsId, { ...label });
  ctx.index.requireBranch(fsId).label = label;
}

export function sameRef(a: CommitOrigin | null | undefined, b: CommitOrigin | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.fsId === b.fsId && a.commitId === b.commitId;
}
