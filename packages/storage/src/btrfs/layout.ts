import { join } from 'node:path';
import { checkCommitId, checkVolumeId } from '../ids.ts';

/**
 * On-disk layout of a btrfs pool (names are ids only; every directory is self-describing):
 *   <root>/pool.json                               {formatVersion, poolId, createdAt}
 *   <root>/fs/<volumeId>/label.json                the volume's label
 *   <root>/fs/<volumeId>/state.json                {seqFloor}: seq never to reuse
 *   <root>/fs/<volumeId>/live                      writable subvolume
 *   <root>/fs/<volumeId>/commits/<commitId>/                 the commit's box (plain directory)
 *   <root>/fs/<volumeId>/commits/<commitId>/<commitId>       read-only snapshot (the commit)
 *   <root>/fs/<volumeId>/commits/<commitId>/seq.json         {seq}: local seq of a received commit
 * Why a box: btrfs refuses (EROFS) to move a read-only subvolume to another directory, and a
 * received commit must never be made writable; so `btrfs receive` fills a box in staging and
 * the box (a plain directory) is renamed into commits/ once verified.
 *   <root>/fs/<volumeId>/diff/base                 read-only snapshot of a clean live kept by diff()
 *                                                  (see diff.ts); dropped by the next commit or rollback
 *   <root>/staging/<opId>/                         in-progress work (intent.json for swaps)
 *   <root>/trash/<opId>/                           deletions in progress
 * Inside every commit: dotmesh.metadata/<commitId>.json {formatVersion, commitId, seq, meta}.
 * Every id is validated before it becomes a path component.
 */
export const META_DIR = 'dotmesh.metadata';

export class Layout {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  get poolFile(): string {
    return join(this.root, 'pool.json');
  }
  get fsDir(): string {
    return join(this.root, 'fs');
  }
  get stagingDir(): string {
    return join(this.root, 'staging');
  }
  get trashDir(): string {
    return join(this.root, 'trash');
  }
  volume(id: string): string {
    return join(this.fsDir, checkVolumeId(id));
  }
  live(id: string): string {
    return join(this.volume(id), 'live');
  }
  label(id: string): string {
    return join(this.volume(id), 'label.json');
  }
  state(id: string): string {
    return join(this.volume(id), 'state.json');
  }
  commitsDir(id: string): string {
    return join(this.volume(id), 'commits');
  }
  commitBox(id: string, commitId: string): string {
    return join(this.commitsDir(id), checkCommitId(commitId));
  }
  commit(id: string, commitId: string): string {
    return join(this.commitBox(id, commitId), commitId);
  }
  importedSeq(id: string, commitId: string): string {
    return join(this.commitBox(id, commitId), 'seq.json');
  }
  /** Box of the snapshot diff() keeps of a clean live (a plain directory, as a commit box). */
  diffBox(id: string): string {
    return join(this.volume(id), 'diff');
  }
  diffBase(id: string): string {
    return join(this.diffBox(id), 'base');
  }
  staging(opId: string): string {
    return join(this.stagingDir, opId);
  }
  trash(opId: string): string {
    return join(this.trashDir, opId);
  }
}

/** Path of a commit's meta file inside a subvolume (the live state or a snapshot). */
export function metaFileIn(subvolume: string, commitId: string): string {
  return join(subvolume, META_DIR, `${checkCommitId(commitId)}.json`);
}
