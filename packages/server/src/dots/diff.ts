import { abbreviate, DEFAULT_SUBDOT, DotmeshError, isDotmeshError, isHeadRef, resolveCommitRef } from '@dotmesh/core';
import type { FileDiff } from '@dotmesh/rpc';
import type { CommitRef, FileChange, LiveRef } from '@dotmesh/storage';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import type { IndexedDot } from './dot-index.ts';
import { resolveBranch } from './resolve.ts';

/**
 * Diffs of dots. Every diff runs under the dot's shared lock, so a rollback or delete (which
 * take it exclusively and may garbage-collect commits) cannot remove a side mid-diff, while
 * commits and other reads go on. Paths are relative to the dot's root (`__default__/...`),
 * except in the original's views (Diff, GET /diff), which show the default subdot only.
 */

/** The live state of branch `fsId` against its latest commit (its origin for a new branch). */
export async function diffLiveVsHead(ctx: Pick<DotContext, 'index' | 'locks' | 'storage'>, fsId: string): Promise<FileChange[]> {
  const dotId = ctx.index.requireBranch(fsId).label.dotId;
  return ctx.locks.shared(dotId, async () => {
    const head = ctx.index.head(fsId);
    if (!head) throw new DotmeshError('COMMIT_NOT_FOUND', `Filesystem ${fsId} has no commit to compare with`);
    return ctx.storage.diff({ volumeId: head.fsId, commitId: head.commitId }, { volumeId: fsId, live: true });
  });
}

/** The live state against one given commit of the dot (GET /diff/<ns>:<name>/<commit>). */
export async function diffLiveVsCommit(
  ctx: Pick<DotContext, 'index' | 'locks' | 'storage'>,
  dot: IndexedDot,
  fsId: string,
  commit: string,
): Promise<FileChange[]> {
  return ctx.locks.shared(dot.id, async () =>
    ctx.storage.diff(findCommit(ctx, dot, fsId, commit), { volumeId: fsId, live: true }),
  );
}

export interface DiffCommitsRequest {
  readonly namespace: unknown;
  readonly name: unknown;
  readonly branch: unknown;
  /** A commit id of the dot, `HEAD`, `HEAD^`, `HEAD~N`…; "" = HEAD. */
  readonly fromCommit: string;
  /** Same, or "" for the live state. */
  readonly toCommit: string;
}

/** DiffCommits: two commits of a dot, or a commit and the branch's live state. */
export async function diffCommits(
  ctx: Pick<DotContext, 'index' | 'locks' | 'storage'>,
  caller: Caller,
  req: DiffCommitsRequest,
): Promise<FileChange[]> {
  const { dot, fsId } = resolveBranch(ctx, caller, req.namespace, req.name, req.branch);
  return ctx.locks.shared(dot.id, async () => {
    const from = findCommit(ctx, dot, fsId, req.fromCommit === '' ? 'HEAD' : req.fromCommit);
    const to: CommitRef | LiveRef =
      req.toCommit === '' ? { volumeId: fsId, live: true } : findCommit(ctx, dot, fsId, req.toCommit);
    return ctx.storage.diff(from, to);
  });
}

/**
 * A commit by reference: `HEAD`/`HEAD^…`/`HEAD~N` or an id in the branch's history, or an id of any
 * other branch of the dot (commit ids are unique within a dot). Call with the dot's lock held.
 */
function findCommit(ctx: Pick<DotContext, 'index'>, dot: IndexedDot, fsId: string, ref: string): CommitRef {
  const history = ctx.index.listedHistory(fsId);
  let id: string;
  try {
    id = resolveCommitRef(
      ref,
      history.map((h) => h.commitId),
    );
  } catch (e) {
    if (!isDotmeshError(e) || isHeadRef(ref)) throw e;
    id = ref;
  }
  for (const branchId of [fsId, ...dot.branches.values()]) {
    const found = ctx.index.listedHistory(branchId).find((h) => h.commitId === id);
    if (found) return { volumeId: found.fsId, commitId: id };
  }
  throw new DotmeshError(
    'COMMIT_NOT_FOUND',
    `No commit ${JSON.stringify(abbreviate(ref))} in ${dot.info.namespace}/${dot.info.name}`,
    {
      hint: "list commits with 'dm log'",
    },
  );
}

/** The wire shape of a whole-dot diff: `to` only on moves. */
export function toWire(changes: readonly FileChange[]): FileDiff[] {
  return changes.map((c) =>
    c.change === 'R' && c.to !== undefined
      ? { change: 'R', filename: c.filename, to: c.to }
      : { change: c.change, filename: c.filename },
  );
}

/**
 * The original's view (Diff RPC, GET /diff): entries of the default subdot only, paths
 * relative to it. A move into or out of the subdot becomes an addition or a removal.
 */
export function defaultSubdotView(changes: readonly FileChange[]): FileDiff[] {
  const prefix = `${DEFAULT_SUBDOT}/`;
  const inside = (p: string) => p.startsWith(prefix);
  const strip = (p: string) => p.slice(prefix.length);
  const out: FileDiff[] = [];
  for (const c of changes) {
    if (c.change === 'R' && c.to !== undefined) {
      if (inside(c.filename) && inside(c.to)) out.push({ change: 'R', filename: strip(c.filename), to: strip(c.to) });
      else if (inside(c.filename)) out.push({ change: '-', filename: strip(c.filename) });
      else if (inside(c.to)) out.push({ change: '+', filename: strip(c.to) });
    } else if (inside(c.filename)) out.push({ change: c.change, filename: strip(c.filename) });
  }
  return out.sort((a, b) => (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0));
}
