import {
  type CommitOrigin,
  DEFAULT_SUBDOT,
  DotmeshError,
  INITIAL_COMMIT_MESSAGE,
  INITIAL_COMMIT_TYPE,
  MASTER_BRANCH,
  validateName,
} from '@dotmesh/core';
import { type Caller, canAccess, requireNamespaceAdmin, requireOwner } from './caller.ts';
import { type DotContext, timestampNs } from './context.ts';
import { DotIndex, type IndexedCommit } from './dot-index.ts';
import { type CommitMetaRecord, type DotInfo, newBranchLabel } from './labels.ts';
import type { ContainerPaths } from './procure.ts';

/**
 * Creates a dot: its master branch volume (with the `__default__` subdot) and the
 * "Initial commit". Steps and what a crash between them leaves (see docs/on-disk-format.md):
 *   volume created ─(create.after-volume)→ initial commit ─(create.after-initial-commit)→
 *   indexed ─(create.after-index)→ reply.
 * A master volume without commits is a half-done create: start-up recovery drops it.
 * A volume with its initial commit is complete: recovery adopts it.
 */
export async function createDot(
  ctx: DotContext,
  caller: Caller,
  namespace: string,
  name: string,
  ownerOf?: () => Promise<string>,
): Promise<string> {
  validateName('namespace', namespace);
  validateName('dot', name);
  requireNamespaceAdmin(caller, namespace);
  ctx.writeGuard.assertWritable(`create ${namespace}/${name}`);
  return ctx.locks.exclusive(`name:${DotIndex.nameKey(namespace, name)}`, async () => {
    if (ctx.index.dotIdByName(namespace, name) !== undefined) {
      throw new DotmeshError('DOT_EXISTS', `A dot named '${namespace}/${name}' already exists`, {
        hint: 'choose another name, or delete the existing dot first',
      });
    }
    const dotId = ctx.newId();
    const createdAt = ctx.now().toISOString();
    // The caller, except when admin creates a dot in another user's namespace (see ownerOf).
    const ownerId = ownerOf ? await ownerOf() : caller.id;
    await materializeDot(ctx, {
      dotId,
      info: { namespace, name, ownerId, collaboratorIds: [], createdAt },
      prepare: () => ctx.driver.ensureDirectory(dotId, DEFAULT_SUBDOT),
      firstCommit: { type: INITIAL_COMMIT_TYPE, message: INITIAL_COMMIT_MESSAGE, author: caller.name },
    });
    ctx.logger.info({ dotId, namespace, name }, 'created dot');
    return dotId;
  });
}

/**
 * The steps every new dot takes (createDot, forkDot): its master volume with its label (empty,
 * or a writable copy of `from`) ─(create.after-volume)→ `prepare` → its first commit
 * ─(create.after-initial-commit)→ indexed and mirrored ─(create.after-index)→. An error undoes
 * what was made, so the dot does not half-exist; a crash instead leaves a master without
 * commits, which start-up recovery drops. Caller holds the name lock.
 */
export async function materializeDot(
  ctx: DotContext,
  o: {
    readonly dotId: string;
    readonly info: DotInfo;
    readonly from?: CommitOrigin;
    readonly prepare?: () => Promise<void>;
    /** Metadata of the first commit (a timestamp is added). */
    readonly firstCommit: Record<string, string>;
  },
): Promise<void> {
  const { dotId, info } = o;
  const label = newBranchLabel({ fsId: dotId, dotId, branch: MASTER_BRANCH, origin: null, createdAt: info.createdAt, dot: info });
  await ctx.driver.createVolume(
    dotId,
    { ...label },
    o.from ? { from: { volumeId: o.from.fsId, commitId: o.from.commitId } } : {},
  );
  try {
    ctx.failpoints.hit('create.after-volume');
    await o.prepare?.();
    const commitId = ctx.newId();
    const meta: CommitMetaRecord = { metadata: { ...o.firstCommit, timestamp: timestampNs(ctx.now()) }, parent: null };
    const commit = await ctx.driver.commit(dotId, commitId, { ...meta });
    ctx.failpoints.hit('create.after-initial-commit');
    ctx.index.addDot(dotId, info);
    ctx.index.addBranch(label, [{ id: commitId, seq: commit.seq, meta } satisfies IndexedCommit]);
    await ctx.mirror.syncDot(dotId);
    ctx.failpoints.hit('create.after-index');
  } catch (e) {
    // The caller sees an error, so the dot must not half-exist: undo what this call made.
    // (A crash instead of an error is handled by start-up recovery with the same outcome.)
    ctx.index.removeDot(dotId);
    await ctx.driver
      .deleteVolume(dotId)
      .catch((err: unknown) => ctx.logger.warn({ err, dotId }, 'cleanup after a failed dot creation'));
    await ctx.mirror.removeDot(dotId, info.namespace, info.name, [dotId]).catch(() => undefined);
    throw e;
  }
}

/**
 * Deletes a dot with all its branches. Owner or admin only; refused while containers use
 * any branch (IN_USE with `data.containers`, their names). Steps: delete intent on the master
 * label ─(delete.after-intent)→ unindexed (the name is free from here) ─(delete.after-index)→
 * branch volumes deleted ─(delete.after-branches)→ master volume deleted → the dot's
 * container_mnt links removed. Recovery finishes any dot whose master carries a delete
 * intent, and start-up removes links no dot owns (container-links.ts). Deleting a dot that
 * does not exist fails (as the original).
 */
export async function deleteDot(
  ctx: DotContext,
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
  await ctx.locks.exclusive(dot.id, () =>
    ctx.writeGuard.whileWritable(async () => {
      if (ctx.index.dots.get(dot.id) !== dot) throw notFound(namespace, name);
      const inUse: string[] = [];
      for (const fsId of dot.branches.values()) {
        for (const c of await ctx.containers.containersFor(fsId)) inUse.push(c.Name);
      }
      if (inUse.length > 0) {
        throw new DotmeshError('IN_USE', `Cannot delete ${namespace}/${name}: containers are using it: ${inUse.join(', ')}`, {
          hint: 'stop the containers first',
          data: { containers: inUse },
        });
      }
      const master = ctx.index.requireBranch(dot.id);
      const fsIds = [...dot.branches.values()];
      await ctx.driver.writeLabel(dot.id, { ...master.label, intent: { op: 'delete', opId: ctx.newId() } });
      try {
        ctx.failpoints.hit('delete.after-intent');
      } catch (e) {
        // The caller sees an error while the dot still exists: take the intent back, or the next
        // start would finish a delete the caller was told had failed. (After a crash, with no
        // reply at all, start-up does finish it.)
        await ctx.driver.writeLabel(dot.id, { ...master.label });
        throw e;
      }
      ctx.index.removeDot(dot.id);
      await ctx.mirror.removeDot(dot.id, namespace, name, fsIds);
      ctx.failpoints.hit('delete.after-index');
      await finishDelete(ctx, dot.id, fsIds);
      const links = await paths?.removeDotLinks(namespace, name, new Set(fsIds.map((id) => ctx.driver.volumePath(id))));
      ctx.logger.info({ dotId: dot.id, namespace, name, links: links?.map((l) => l.path) }, 'deleted dot');
    }),
  );
}

/** Deletes the branch volumes, then the master volume. Idempotent (recovery reuses it). */
export async function finishDelete(ctx: DotContext, dotId: string, fsIds: readonly string[]): Promise<void> {
  for (const fsId of fsIds) if (fsId !== dotId) await ctx.driver.deleteVolume(fsId);
  ctx.failpoints.hit('delete.after-branches');
  await ctx.driver.deleteVolume(dotId);
}

export function notFound(namespace: string, name: string): DotmeshError {
  return new DotmeshError('DOT_NOT_FOUND', `No such filesystem named '${namespace}/${name}'`, {
    hint: "list dots with 'dm list'",
  });
}
