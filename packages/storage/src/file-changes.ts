import type { CommitRef, FileChange, LiveRef } from './driver.ts';

/** The directory where drivers keep each commit's own metadata file, never shown in a diff. */
export const DRIVER_META_DIR = 'dotmesh.metadata';

export function isLiveRef(ref: CommitRef | LiveRef): ref is LiveRef {
  return (ref as LiveRef).live === true;
}

/** Whether a volume-relative path is (inside) the driver's own metadata directory. */
export function isDriverPath(path: string): boolean {
  return path === DRIVER_META_DIR || path.startsWith(`${DRIVER_META_DIR}/`);
}

/**
 * Normalises a driver's raw change list into the FileChange contract: drops the driver's own
 * paths (a move into or out of them becomes a removal or an addition), turns a removal and an
 * addition of the same path into one `M`, removes duplicates and sorts by path (then change).
 */
export function finishChanges(raw: readonly FileChange[]): FileChange[] {
  const out = new Map<string, FileChange>();
  const put = (c: FileChange) => {
    const key = `${c.filename}\u0000${c.to ?? ''}`;
    const prev = out.get(key);
    if (prev && prev.change !== c.change && c.to === undefined) {
      out.set(key, { change: 'M', filename: c.filename });
    } else out.set(key, c);
  };
  for (const c of raw) {
    if (c.change === 'R' && c.to !== undefined) {
      const fromHidden = isDriverPath(c.filename);
      const toHidden = isDriverPath(c.to);
      if (fromHidden && toHidden) continue;
      if (fromHidden) put({ change: '+', filename: c.to });
      else if (toHidden) put({ change: '-', filename: c.filename });
      else put(c);
    } else if (!isDriverPath(c.filename)) {
      put({ change: c.change, filename: c.filename });
    }
  }
  return [...out.values()].sort((a, b) =>
    a.filename === b.filename ? a.change.localeCompare(b.change) : a.filename < b.filename ? -1 : 1,
  );
}
