import type { FileChange } from '../driver.ts';
import { finishChanges } from '../file-changes.ts';

/**
 * Diff of two memory-driver trees (path → data; `dir/` keys are explicit directories; the
 * ancestors of every key exist implicitly, as `mkdir -p` would make them).
 * Files with different bytes are `M`. The memory driver has no inodes, so a move is
 * recognised by content: a removed and an added file with the same non-empty bytes become
 * one `R` (pairs taken in path order). A moved directory shows as its entries removed and
 * added (btrfs reports it as one `R`).
 */
export function diffTrees(from: ReadonlyMap<string, Buffer>, to: ReadonlyMap<string, Buffer>): FileChange[] {
  const a = entries(from);
  const b = entries(to);
  const raw: FileChange[] = [];
  const removed: string[] = [];
  const added: string[] = [];
  for (const [path, data] of a) {
    const other = b.get(path);
    if (other === undefined) removed.push(path);
    else if ((data === null) !== (other === null)) raw.push({ change: 'M', filename: path });
    else if (data !== null && other !== null && !data.equals(other)) raw.push({ change: 'M', filename: path });
  }
  for (const path of b.keys()) if (!a.has(path)) added.push(path);
  const taken = new Set<string>();
  for (const path of removed.sort()) {
    const data = a.get(path);
    const target =
      data && data.length > 0 ? added.sort().find((p) => !taken.has(p) && b.get(p)?.equals(data) === true) : undefined;
    if (target === undefined) raw.push({ change: '-', filename: path });
    else {
      taken.add(target);
      raw.push({ change: 'R', filename: path, to: target });
    }
  }
  for (const path of added) if (!taken.has(path)) raw.push({ change: '+', filename: path });
  return finishChanges(raw);
}

/** path → file data, or null for a directory (explicit or implied by a deeper path). */
function entries(tree: ReadonlyMap<string, Buffer>): Map<string, Buffer | null> {
  const out = new Map<string, Buffer | null>();
  for (const [key, data] of tree) {
    const isDir = key.endsWith('/');
    const path = isDir ? key.slice(0, -1) : key;
    out.set(path, isDir ? null : data);
    for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) out.set(path.slice(0, i), null);
  }
  return out;
}
