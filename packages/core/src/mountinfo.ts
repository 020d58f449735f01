/**
 * /proc/self/mountinfo, parsed: one parser for the storage driver (pool mounts) and the CSI
 * driver (its bind mounts). Pure text; reading the file is the caller's.
 */
export interface MountEntry {
  /** Mount id and the id of the mount it sits on (fields 1 and 2 of mountinfo). */
  readonly id: number;
  readonly parentId: number;
  readonly mountPoint: string;
  /** Path inside the filesystem that is mounted (btrfs: the subvolume path). */
  readonly root: string;
  readonly fsType: string;
  readonly source: string;
  readonly options: string;
  /** Mounted read-only (`ro` among the mount options). */
  readonly readOnly: boolean;
}

const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** Parses /proc/self/mountinfo (fields: id parent maj:min root mountpoint opts [optional...] - fstype source superopts). */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [left, right] = line.split(' - ');
    const l = left?.split(' ') ?? [];
    const r = right?.split(' ') ?? [];
    if (l.length < 6 || r.length < 2) continue;
    out.push({
      id: Number(l[0]),
      parentId: Number(l[1]),
      root: unescapeOctal(l[3]!),
      mountPoint: unescapeOctal(l[4]!),
      options: l[5]!,
      readOnly: l[5]!.split(',').includes('ro'),
      fsType: r[0]!,
      source: unescapeOctal(r[1]!),
    });
  }
  return out;
}

const coversPath = (outer: string, inner: string) =>
  outer === inner || inner.startsWith(outer.endsWith('/') ? outer : `${outer}/`);

/**
 * Drops the mounts nobody can reach by path, which mountinfo still lists: those under a mount
 * stacked on the same path, or under a later mount of an enclosing directory. A mount is kept
 * when resolving its own mount point from the root lands on it. This is what a process sees in a
 * mount namespace where a directory was bind-mounted over a tree that had mounts below it (a
 * test's isolated host over the real /var/lib, a container).
 */
export function visibleMounts(entries: readonly MountEntry[]): MountEntry[] {
  const ids = new Set(entries.map((m) => m.id));
  const children = new Map<number, MountEntry[]>();
  for (const m of entries) children.set(m.parentId, [...(children.get(m.parentId) ?? []), m]);
  // Of several mounts on one parent at one path, the later one (in mountinfo order) is on top.
  const topOf = (m: MountEntry): MountEntry => {
    for (let at = m; ; ) {
      const over = (children.get(at.id) ?? []).filter((c) => c.mountPoint === at.mountPoint).at(-1);
      if (!over) return at;
      at = over;
    }
  };
  const root = entries.filter((m) => !ids.has(m.parentId) && m.mountPoint === '/').at(-1);
  if (!root) return [...entries];
  const resolve = (path: string): MountEntry => {
    let at = topOf(root);
    for (;;) {
      const inner = (children.get(at.id) ?? []).filter((c) => c.mountPoint !== at.mountPoint && coversPath(c.mountPoint, path));
      // The first mount point met walking down the path: the shortest; the later of equals.
      const first = inner.reduce<MountEntry | undefined>(
        (best, c) => (!best || c.mountPoint.length <= best.mountPoint.length ? c : best),
        undefined,
      );
      if (!first) return at;
      at = topOf(first);
    }
  };
  return entries.filter((m) => resolve(m.mountPoint) === m);
}
