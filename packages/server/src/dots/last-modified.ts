import { lstat } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import type { FileChange } from '@dotmesh/storage';
import type { Caller } from './caller.ts';
import type { DotContext } from './context.ts';
import { diffLiveVsHead } from './diff.ts';
import { resolveBranch } from './resolve.ts';

/** At most this many changed entries are stat'ed (newest ctime wins). */
const MAX_STATS = 10_000;

/**
 * LastModified: when the live state of a dot's master branch last changed.
 *  - no change since its latest commit (diff empty): that commit's time (its `timestamp`);
 *  - else the newest ctime among the changed entries that still exist, and the directories
 *    that held removed ones (a removal changes its directory's ctime); ctime rather than
 *    mtime because `touch -d` cannot set it back;
 *  - when the driver has no host paths to stat (memory driver) or nothing could be stat'ed:
 *    now (an upper bound).
 * The original returned the creation time of its temporary diff snapshot instead.
 */
export async function lastModified(
  ctx: Pick<DotContext, 'index' | 'locks' | 'now' | 'storage'>,
  caller: Caller,
  namespace: unknown,
  name: unknown,
): Promise<Date> {
  const { fsId } = resolveBranch(ctx, caller, namespace, name, '');
  const changes = await diffLiveVsHead(ctx, fsId);
  if (changes.length === 0) return headTime(ctx, fsId) ?? ctx.now();
  const root = ctx.storage.volumePath(fsId);
  if (!isAbsolute(root)) return ctx.now();
  const newest = await newestCtime(root, changes.slice(0, MAX_STATS));
  return newest === undefined ? ctx.now() : new Date(newest);
}

/** RFC 3339 in UTC with whole seconds, as Go's time.RFC3339 prints it. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}

function headTime(ctx: Pick<DotContext, 'index'>, fsId: string): Date | undefined {
  const head = ctx.index.head(fsId);
  const ts = head ? ctx.index.findCommit(head)?.meta.metadata.timestamp : undefined;
  if (typeof ts !== 'string' || !/^\d{1,30}$/.test(ts)) return undefined;
  return new Date(Number(BigInt(ts) / 1_000_000n));
}

async function newestCtime(root: string, changes: readonly FileChange[]): Promise<number | undefined> {
  const paths = new Set<string>();
  for (const c of changes) {
    if (c.change === '-') paths.add(dirname(c.filename));
    else paths.add(c.change === 'R' && c.to !== undefined ? c.to : c.filename);
  }
  let newest: number | undefined;
  const list = [...paths];
  for (let i = 0; i < list.length; i += 64) {
    const stats = await Promise.all(list.slice(i, i + 64).map((p) => lstat(join(root, p)).catch(() => undefined)));
    for (const s of stats) if (s && (newest === undefined || s.ctimeMs > newest)) newest = s.ctimeMs;
  }
  return newest;
}
