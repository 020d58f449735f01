import type { VolumeSizes } from '../driver.ts';
import type { Exec, ExecLogger } from '../exec.ts';
import type { BtrfsCli, SubvolumeListEntry } from './btrfs-cli.ts';
import type { Layout } from './layout.ts';

/**
 * Sizes and dirty state of volumes.
 *
 * Dirty rule (never clean after a write): first `sync -f` the pool (a write raises a
 * subvolume's generation only once its transaction commits), then list every subvolume with
 * generations in ONE `btrfs subvolume list` call and compare the live's `gen` with its
 * baseline = max(live's own `cgen`, `cgen` of every snapshot whose parent is this live).
 * A new live (create, branch, rollback: a fresh subvolume or writable snapshot) has
 * gen == cgen until written; right after `snapshot -r` the live's gen equals the snapshot's
 * cgen. Renames do not change generations; the pool is mounted noatime so reads do not
 * either. Received commits are not snapshots of the live and never count. Lives are matched
 * by UUID (from `subvolume show`, once per live, then cached), so paths in the listing don't matter;
 * a live that cannot be matched is reported dirty.
 *
 * referencedBytes: `btrfs filesystem du -s` over all lives in one call (walks each tree:
 * O(files); chosen over qgroups, which cost on every write and must not be enabled on a
 * user's filesystem); not measured (0) with `referenced: false`. dirtyBytes: extents newer
 * than the baseline (`find-new`, bounded).
 */
export async function volumeSizes(o: {
  exec: Exec;
  cli: BtrfsCli;
  layout: Layout;
  ids: readonly string[];
  logger: ExecLogger;
  /** Cache volumeId → live UUID, owned by the driver (which drops an entry when the live is replaced). */
  liveUuids: Map<string, string>;
  /** Cache volumeId → referenced bytes measured at (live UUID, generation), owned by the driver. */
  referencedCache: Map<string, { uuid: string; gen: number; bytes: number }>;
  /** Cache volumeId → dirty bytes measured at (live UUID, generation, baseline), owned by the driver. */
  dirtyCache?: Map<string, { uuid: string; gen: number; baseline: number; bytes: number }>;
  /** false: referencedBytes is not measured (0), only the dirty state. Default true. */
  referenced?: boolean;
}): Promise<Map<string, VolumeSizes>> {
  const out = new Map<string, VolumeSizes>();
  if (o.ids.length === 0) return out;
  await o.exec.run('sync', ['-f', o.layout.root]);
  const list = await o.cli.list(o.layout.root);
  // Lives are found by their path in the listing (`…/fs/<id>/live`); `subvolume show` only
  // for a live the listing does not name that way (e.g. a pool inside a subvolume).
  const byPath = new Map<string, SubvolumeListEntry>();
  for (const e of list) {
    const m = /(?:^|\/)fs\/([^/]+)\/live$/.exec(e.path);
    if (m) byPath.set(m[1]!, e);
  }
  for (const id of o.ids) {
    const e = byPath.get(id);
    if (e && !o.liveUuids.has(id)) o.liveUuids.set(id, e.uuid);
  }
  const uuids = await Promise.all(o.ids.map((id) => liveUuid(o, id)));
  const byUuid = new Map<string, SubvolumeListEntry>(list.map((e) => [e.uuid, e]));
  // `du` walks files: only for lives whose generation moved since their last measurement.
  const measure = o.referenced !== false;
  const stale = o.ids.filter((id, i) => {
    if (!measure) return false;
    const cached = o.referencedCache.get(id);
    const live = byUuid.get(uuids[i]!);
    return !cached || !live || cached.uuid !== live.uuid || cached.gen !== live.gen;
  });
  const measured = await o.cli.du(stale.map((id) => o.layout.live(id)));
  const referenced = new Map<string, number>();
  o.ids.forEach((id, i) => {
    const live = byUuid.get(uuids[i]!);
    const fresh = measured.get(o.layout.live(id));
    if (fresh !== undefined) {
      referenced.set(o.layout.live(id), fresh);
      if (live) o.referencedCache.set(id, { uuid: live.uuid, gen: live.gen, bytes: fresh });
    } else {
      referenced.set(o.layout.live(id), measure ? (o.referencedCache.get(id)?.bytes ?? 0) : 0);
    }
  });
  const ownSnapshotCgen = new Map<string, number>();
  for (const e of list) {
    if (e.parentUuid) ownSnapshotCgen.set(e.parentUuid, Math.max(ownSnapshotCgen.get(e.parentUuid) ?? 0, e.cgen));
  }
  await Promise.all(
    o.ids.map(async (id, i) => {
      const uuid = uuids[i]!;
      const live = byUuid.get(uuid);
      let dirty = true;
      let baseline = 0;
      if (live) {
        baseline = Math.max(live.cgen, ownSnapshotCgen.get(uuid) ?? 0);
        dirty = live.gen > baseline;
      } else {
        o.logger.warn({ volumeId: id, uuid }, 'live subvolume missing from btrfs subvolume list; reporting dirty');
      }
      let dirtyBytes = 0;
      if (dirty && live) {
        // find-new walks the changed extents: only again when the live's generation moved.
        const cached = o.dirtyCache?.get(id);
        if (cached && cached.uuid === live.uuid && cached.gen === live.gen && cached.baseline === baseline) {
          dirtyBytes = cached.bytes;
        } else {
          dirtyBytes = await o.cli.changedBytes(o.layout.live(id), baseline + 1);
          o.dirtyCache?.set(id, { uuid: live.uuid, gen: live.gen, baseline, bytes: dirtyBytes });
        }
      }
      out.set(id, { referencedBytes: referenced.get(o.layout.live(id)) ?? 0, dirty, dirtyBytes });
    }),
  );
  return out;
}

async function liveUuid(o: { cli: BtrfsCli; layout: Layout; liveUuids: Map<string, string> }, id: string): Promise<string> {
  let uuid = o.liveUuids.get(id);
  if (uuid === undefined) {
    uuid = (await o.cli.show(o.layout.live(id))).uuid;
    o.liveUuids.set(id, uuid);
  }
  return uuid;
}
