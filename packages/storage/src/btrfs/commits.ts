import { rm, writeFile } from 'node:fs/promises';
import { DotmeshError } from '@dotmesh/core';
import type { CommitInfo, CommitMeta } from '../driver.ts';
import { STORAGE_ID_PATTERN } from '../ids.ts';
import type { BtrfsCli } from './btrfs-cli.ts';
import { isSubvolumeRoot, listDir, mkdirp, readJsonObject, writeJsonAtomic } from './fsutil.ts';
import { type Layout, META_DIR, metaFileIn } from './layout.ts';

/** Content of `dotmesh.metadata/<commitId>.json` inside a commit. */
export interface CommitMetaFile {
  readonly formatVersion: 1;
  readonly commitId: string;
  readonly seq: number;
  readonly meta: CommitMeta;
}

/**
 * Commits of btrfs volumes. Contract: callers hold the volume's mutex for mutations.
 * A commit exists iff its box holds the snapshot; an empty box (crash) counts as absent.
 * seq: local commits carry it in their meta file; received commits carry the sender's seq
 * there, so their local seq lives in the box's seq.json (written before the box becomes visible). Deleting a commit first raises `state.json.seqFloor`, so a seq is never
 * reused, even after a restart.
 */
export class CommitStore {
  private readonly layout: Layout;
  private readonly cli: BtrfsCli;
  /** Highest seq handed out per volume (cache; loaded from disk on first use). */
  private readonly highWater = new Map<string, number>();

  constructor(layout: Layout, cli: BtrfsCli) {
    this.layout = layout;
    this.cli = cli;
  }

  reset(): void {
    this.highWater.clear();
  }
  forget(id: string): void {
    this.highWater.delete(id);
  }

  /**
   * Meta file → snapshot -r. Durable when it returns: creating a snapshot flushes the source's
   * dirty data (the meta file included, so no fsync of its own is needed) and commits the btrfs
   * transaction before the ioctl returns (checked: the on-disk super generation advances), so
   * no separate sync follows. A crash before the snapshot leaves only a stray (maybe partial)
   * meta file in live, which is never listed as a commit and is overwritten by a retry.
   */
  async commit(id: string, commitId: string, meta: CommitMeta): Promise<CommitInfo> {
    const path = this.layout.commit(id, commitId);
    if (await isSubvolumeRoot(path)) throw new DotmeshError('COMMIT_EXISTS', `commit ${commitId} already exists in volume ${id}`);
    await rm(this.layout.commitBox(id, commitId), { recursive: true, force: true });
    const seq = (await this.high(id)) + 1;
    const live = this.layout.live(id);
    const file: CommitMetaFile = { formatVersion: 1, commitId, seq, meta };
    await mkdirp(`${live}/${META_DIR}`);
    await writeFile(metaFileIn(live, commitId), `${JSON.stringify(file)}\n`);
    await mkdirp(this.layout.commitBox(id, commitId));
    await this.cli.snapshot(live, path, { readonly: true });
    this.highWater.set(id, seq);
    return { id: commitId, seq, meta };
  }

  /** Reserves the next seq for a commit being imported. */
  async reserve(id: string): Promise<number> {
    const seq = (await this.high(id)) + 1;
    this.highWater.set(id, seq);
    return seq;
  }

  async list(id: string): Promise<CommitInfo[]> {
    const out: CommitInfo[] = [];
    for (const commitId of await listDir(this.layout.commitsDir(id))) {
      if (!STORAGE_ID_PATTERN.test(commitId)) continue;
      const info = await this.read(id, commitId);
      if (info) out.push(info);
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /** Idempotent. */
  async delete(id: string, commitId: string): Promise<void> {
    const path = this.layout.commit(id, commitId);
    if (await isSubvolumeRoot(path)) {
      const floor = await this.high(id);
      await writeJsonAtomic(this.layout.state(id), { seqFloor: floor });
      await this.cli.delete([path]);
    }
    await rm(this.layout.commitBox(id, commitId), { recursive: true, force: true });
  }

  /** A commit's info, or undefined for a snapshot without a readable meta file (not ours). */
  async read(id: string, commitId: string): Promise<CommitInfo | undefined> {
    const file = await readJsonObject(metaFileIn(this.layout.commit(id, commitId), commitId)).catch(() => undefined);
    if (!file || typeof file.seq !== 'number' || !file.meta || typeof file.meta !== 'object') return undefined;
    const imported = await readJsonObject(this.layout.importedSeq(id, commitId)).catch(() => undefined);
    const seq = typeof imported?.seq === 'number' ? imported.seq : file.seq;
    return { id: commitId, seq, meta: file.meta as CommitMeta };
  }

  private async high(id: string): Promise<number> {
    const cached = this.highWater.get(id);
    if (cached !== undefined) return cached;
    const state = await readJsonObject(this.layout.state(id)).catch(() => undefined);
    let high = typeof state?.seqFloor === 'number' ? state.seqFloor : 0;
    for (const c of await this.list(id)) high = Math.max(high, c.seq);
    this.highWater.set(id, high);
    return high;
  }
}
