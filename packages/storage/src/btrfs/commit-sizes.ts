import type { CommitSizes } from '../driver.ts';
import type { Exec } from '../exec.ts';
import type { BtrfsCli, SubvolumeListEntry } from './btrfs-cli.ts';
import type { Layout } from './layout.ts';

/**
 * Per-commit space without quotas: `btrfs filesystem du -s --raw` over each commit snapshot.
 * Its "Total" column is the referenced bytes, its "Exclusive" column the bytes of extents no
 * other file or subvolume of the filesystem shares (FIEMAP's SHARED flag, computed by the
 * kernel across the whole filesystem), which is what deleting the snapshot frees (measured:
 * docs/decisions.md). Inline data of tiny files is not counted.
 *
 * Cache: `du` walks every file, so results are kept per volume, keyed on the state they depend
 * on: the (uuid, generation) of every subvolume related to the volume by snapshot lineage
 * (its live, its commits, the branches made from its commits, their commits, ...). A deleted
 * commit, a new branch, a rollback or a write to any related live changes that key. Sharing
 * made outside lineage (a reflink copy from another dot) is not seen until the key changes.
 * The pool is synced first, since generations move only when a transaction commits, and
 * deleted subvolumes are waited for (`btrfs subvolume sync`): until the cleaner has dropped a
 * deleted commit its extents still count as shared. Committing the transaction wakes the
 * cleaner, so this usually takes milliseconds; after CLEANER_WAIT_MS the sizes are returned
 * anyway (overstating sharing) and not cached.
 */
export const CLEANER_WAIT_MS = 10_000;

export class CommitSizeCache {
  readonly #cache = new Map<string, { key: string; sizes: Map<string, CommitSizes> }>();

  forget(volumeId: string): void {
    this.#cache.delete(volumeId);
  }

  clear(): void {
    this.#cache.clear();
  }

  async measure(o: { exec: Exec; cli: BtrfsCli; layout: Layout; volumeId: string }): Promise<Map<string, CommitSizes>> {
    await o.cli.sync(o.layout.root);
    const cleaned = await o.exec
      .run('btrfs', ['subvolume', 'sync', o.layout.root], { timeoutMs: CLEANER_WAIT_MS })
      .then(() => true)
      .catch(() => false);
    const list = await o.cli.list(o.layout.root);
    const { commits, family } = related(list, o.volumeId);
    const key = [...family]
      .map((e) => `${e.uuid}:${e.gen}`)
      .sort()
      .join(',');
    const cached = this.#cache.get(o.volumeId);
    if (cached && cached.key === key) return new Map(cached.sizes);
    const sizes = await duCommits(
      o.exec,
      commits.map((c) => ({ commitId: c, path: o.layout.commit(o.volumeId, c) })),
    );
    if (cleaned) this.#cache.set(o.volumeId, { key, sizes });
    return new Map(sizes);
  }
}

const COMMIT_PATH = /(?:^|\/)fs\/([^/]+)\/commits\/([^/]+)\/([^/]+)$/;
const LIVE_PATH = /(?:^|\/)fs\/([^/]+)\/live$/;

/** The volume's commit ids and every subvolume related to it by snapshot lineage. */
export function related(
  list: readonly SubvolumeListEntry[],
  volumeId: string,
): { commits: string[]; family: Set<SubvolumeListEntry> } {
  const commits: string[] = [];
  const family = new Set<SubvolumeListEntry>();
  for (const e of list) {
    const c = COMMIT_PATH.exec(e.path);
    if (c && c[1] === volumeId && c[2] === c[3]) {
      commits.push(c[2]!);
      family.add(e);
    } else if (LIVE_PATH.exec(e.path)?.[1] === volumeId) {
      family.add(e);
    }
  }
  // Breadth-first over lineage edges in both directions (parent → snapshot, snapshot → parent).
  const byUuid = new Map(list.map((e) => [e.uuid, e]));
  const children = new Map<string, SubvolumeListEntry[]>();
  for (const e of list) if (e.parentUuid) children.set(e.parentUuid, [...(children.get(e.parentUuid) ?? []), e]);
  const queue = [...family];
  while (queue.length > 0) {
    const e = queue.pop()!;
    const parent = e.parentUuid === undefined ? undefined : byUuid.get(e.parentUuid);
    for (const next of [...(parent ? [parent] : []), ...(children.get(e.uuid) ?? [])]) {
      if (family.has(next)) continue;
      family.add(next);
      queue.push(next);
    }
  }
  return { commits, family };
}

/** One `btrfs filesystem du -s --raw` call for all commits (Total, Exclusive, Set shared, path). */
async function duCommits(
  exec: Exec,
  commits: ReadonlyArray<{ commitId: string; path: string }>,
): Promise<Map<string, CommitSizes>> {
  const out = new Map<string, CommitSizes>();
  if (commits.length === 0) return out;
  const { stdout } = await exec.run('btrfs', ['filesystem', 'du', '-s', '--raw', ...commits.map((c) => c.path)]);
  const byPath = new Map<string, CommitSizes>();
  for (const line of stdout.split('\n').slice(1)) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\d+|-)\s+(.+)$/.exec(line);
    if (m) byPath.set(m[4]!, { referencedBytes: Number(m[1]), exclusiveBytes: Number(m[2]) });
  }
  for (const c of commits) {
    const sizes = byPath.get(c.path);
    if (!sizes) throw new Error(`btrfs filesystem du printed no line for ${c.path}`);
    out.set(c.commitId, sizes);
  }
  return out;
}
