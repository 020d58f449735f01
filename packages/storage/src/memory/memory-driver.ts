import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { DotmeshError } from '@dotmesh/core';
import type {
  CommitInfo,
  CommitMeta,
  CommitRef,
  CommitSizes,
  FileChange,
  LiveRef,
  PoolInfo,
  RecoveryReport,
  StorageDriver,
  VolumeInfo,
  VolumeLabel,
  VolumeSizes,
} from '../driver.ts';
import { isLiveRef } from '../file-changes.ts';
import { frameEncoder, readFramed } from '../frames.ts';
import { checkCommitId, checkRelPath, checkVolumeId, newPoolId } from '../ids.ts';
import { diffTrees } from './diff.ts';
import { decodeStream, encodeStream, type StreamEntry } from './stream-format.ts';

type Tree = Map<string, Buffer>;

interface MemCommit {
  readonly id: string;
  readonly seq: number;
  readonly meta: CommitMeta;
  readonly files: Tree;
  /** Identity of this copy of the commit, and of the copy it was received from (if any). */
  readonly uuid: string;
  readonly receivedUuid?: string;
}

interface MemVolume {
  label: VolumeLabel;
  files: Tree;
  readonly commits: Map<string, MemCommit>;
  nextSeq: number;
  dirtyBytes: number;
  dirty: boolean;
  readOnly?: boolean;
}

const copyTree = (t: Tree): Tree => new Map([...t].map(([k, v]) => [k, Buffer.from(v)]));
const clone = <T>(v: T): T => structuredClone(v);

/**
 * In-memory StorageDriver for fast tests of the layers above. Everything lives in the process;
 * `volumePath`/`commitPath` return pseudo paths (`memory://...`) that nothing can open, so the
 * driver also offers a harness API (writeFile, readFile, ...) standing in for a container's writes.
 * Semantics match the btrfs driver, including dirty tracking (any write since the last
 * commit/create/rollback) and incremental streams that need the parent on the receiving side.
 */
export class MemoryDriver implements StorageDriver {
  readonly kind = 'memory';
  private readonly volumes = new Map<string, MemVolume>();
  private readonly poolId: string;
  private readonly totalBytes: number;

  constructor(options: { poolId?: string; totalBytes?: number } = {}) {
    this.poolId = options.poolId ?? newPoolId();
    this.totalBytes = options.totalBytes ?? 1 << 30;
  }

  async open(): Promise<RecoveryReport> {
    return { actions: [] };
  }
  async close(): Promise<void> {}

  async poolInfo(): Promise<PoolInfo> {
    let used = 0;
    for (const v of this.volumes.values()) used += treeBytes(v.files);
    return { poolId: this.poolId, formatVersion: 1, totalBytes: this.totalBytes, freeBytes: Math.max(0, this.totalBytes - used) };
  }

  async createVolume(id: string, label: VolumeLabel, options: { from?: CommitRef } = {}): Promise<void> {
    checkVolumeId(id);
    if (this.volumes.has(id)) throw new DotmeshError('CONFLICT', `volume ${id} already exists`);
    const files = options.from ? copyTree(this.getCommit(options.from).files) : new Map();
    this.volumes.set(id, { label: clone(label), files, commits: new Map(), nextSeq: 1, dirty: false, dirtyBytes: 0 });
  }

  async writeLabel(id: string, label: VolumeLabel): Promise<void> {
    this.get(id).label = clone(label);
  }
  async readLabel(id: string): Promise<VolumeLabel> {
    return clone(this.get(id).label);
  }
  async deleteVolume(id: string): Promise<void> {
    this.volumes.delete(checkVolumeId(id));
  }
  async listVolumes(): Promise<VolumeInfo[]> {
    return [...this.volumes].map(([id, v]) => ({ id, label: clone(v.label) }));
  }
  volumePath(id: string): string {
    return `memory://${checkVolumeId(id)}`;
  }
  async setLiveReadOnly(id: string, readOnly: boolean): Promise<void> {
    this.get(id).readOnly = readOnly;
  }
  async liveReadOnly(id: string): Promise<boolean> {
    return this.get(id).readOnly === true;
  }
  /** Directories are entries `<path>/` with no data (so they travel in commits and streams). */
  async ensureDirectory(id: string, relPath: string): Promise<void> {
    const v = this.get(id);
    const parts = checkRelPath(relPath);
    for (let i = 1; i <= parts.length; i++) {
      const key = `${parts.slice(0, i).join('/')}/`;
      if (v.files.has(key)) continue;
      v.files.set(key, Buffer.alloc(0));
      v.dirty = true;
    }
  }

  async removeDirectory(id: string, relPath: string): Promise<void> {
    const v = this.get(id);
    const prefix = `${checkRelPath(relPath).join('/')}/`;
    for (const key of [...v.files.keys()]) {
      if (!key.startsWith(prefix)) continue;
      v.files.delete(key);
      v.dirty = true;
    }
  }

  async listDirectory(id: string, relPath: string): Promise<string[]> {
    const v = this.get(id);
    const prefix = relPath === '' ? '' : `${checkRelPath(relPath).join('/')}/`;
    const names = new Set<string>();
    for (const key of v.files.keys()) {
      if (!key.startsWith(prefix) || key === prefix) continue;
      names.add(key.slice(prefix.length).split('/')[0]!);
    }
    return [...names].sort();
  }

  async commit(id: string, commitId: string, meta: CommitMeta): Promise<CommitInfo> {
    const v = this.get(id);
    checkCommitId(commitId);
    if (v.commits.has(commitId)) throw new DotmeshError('COMMIT_EXISTS', `commit ${commitId} already exists in volume ${id}`);
    const c: MemCommit = { id: commitId, seq: v.nextSeq++, meta: clone(meta), files: copyTree(v.files), uuid: randomUUID() };
    v.commits.set(commitId, c);
    v.dirty = false;
    v.dirtyBytes = 0;
    return info(c);
  }
  async listCommits(id: string): Promise<CommitInfo[]> {
    return [...this.get(id).commits.values()].sort((a, b) => a.seq - b.seq).map(info);
  }
  async deleteCommit(id: string, commitId: string): Promise<void> {
    this.volumes.get(checkVolumeId(id))?.commits.delete(checkCommitId(commitId));
  }
  commitPath(id: string, commitId: string): string {
    return `memory://${checkVolumeId(id)}@${checkCommitId(commitId)}`;
  }

  async rollback(id: string, to: CommitRef): Promise<void> {
    const v = this.get(id);
    v.files = copyTree(this.getCommit(to).files);
    v.readOnly = false;
    v.dirty = false;
    v.dirtyBytes = 0;
  }

  async sizes(ids?: readonly string[], o: { readonly referenced?: boolean } = {}): Promise<Map<string, VolumeSizes>> {
    const out = new Map<string, VolumeSizes>();
    for (const id of ids ?? [...this.volumes.keys()]) {
      const v = this.get(id);
      const referencedBytes = o.referenced === false ? 0 : treeBytes(v.files);
      out.set(id, { referencedBytes, dirty: v.dirty, dirtyBytes: v.dirty ? v.dirtyBytes : 0 });
    }
    return out;
  }

  /** Exclusive = entries no other tree of the pool (live or commit) holds with the same content. */
  async commitSizes(id: string): Promise<Map<string, CommitSizes>> {
    const out = new Map<string, CommitSizes>();
    for (const c of this.get(id).commits.values()) {
      const others = [...this.volumes.values()].flatMap((v) => [
        v.files,
        ...[...v.commits.values()].filter((o) => o !== c).map((o) => o.files),
      ]);
      let exclusiveBytes = 0;
      for (const [path, data] of c.files) if (!others.some((t) => t.get(path)?.equals(data))) exclusiveBytes += data.length;
      out.set(c.id, { referencedBytes: treeBytes(c.files), exclusiveBytes });
    }
    return out;
  }

  exportCommit(id: string, commitId: string, options: { parent?: CommitRef } = {}): Readable {
    try {
      const c = this.getCommit({ volumeId: id, commitId });
      const parent = options.parent ? this.getCommit(options.parent) : undefined;
      const entries: StreamEntry[] = [];
      for (const [path, data] of c.files) {
        const old = parent?.files.get(path);
        if (!old?.equals(data)) entries.push({ op: 'put', path, data: data.toString('base64') });
      }
      for (const path of parent?.files.keys() ?? []) if (!c.files.has(path)) entries.push({ op: 'del', path });
      // As btrfs send: a received commit is named by the uuid it was received as.
      const uuid = c.receivedUuid ?? c.uuid;
      const header = { format: 'dotmesh-memory-stream' as const, version: 1 as const, commitId, uuid, meta: c.meta };
      const raw = encodeStream(parent ? { ...header, parentUuid: parent.receivedUuid ?? parent.uuid } : header, entries);
      return Readable.from(raw, { objectMode: false }).pipe(frameEncoder());
    } catch (e) {
      const r = new Readable({ read() {} });
      process.nextTick(() => r.destroy(e as Error));
      return r;
    }
  }

  async importCommit(
    id: string,
    stream: Readable,
    options: { readonly parent?: CommitRef; readonly onProgress?: (bytes: number) => void } = {},
  ): Promise<CommitInfo> {
    const v = this.get(id);
    const expectedParent = options.parent ? this.getCommit(options.parent) : undefined;
    const { header, entries } = decodeStream(
      (await readFramed(stream, `stream into volume ${id}`, options.onProgress)).toString(),
    );
    checkCommitId(header.commitId);
    let files: Tree = new Map();
    if (v.commits.has(header.commitId)) {
      throw new DotmeshError('COMMIT_EXISTS', `commit ${header.commitId} already exists in volume ${id}`);
    }
    // As the btrfs driver: a commit is received at most once per pool (a second subvolume with
    // the same received uuid would make later parent lookups ambiguous).
    if (this.findByUuid(header.uuid)) {
      throw new DotmeshError('INVALID_ARGUMENT', `the stream's subvolume uuid ${header.uuid} is already in this pool`);
    }
    // The stream's parent must be exactly the one the caller expects (see the driver contract).
    if ((header.parentUuid === undefined) !== (expectedParent === undefined)) {
      throw new DotmeshError('INVALID_ARGUMENT', `stream for commit ${header.commitId} does not match the expected parent`);
    }
    if (
      header.parentUuid !== undefined &&
      expectedParent &&
      header.parentUuid !== expectedParent.uuid &&
      header.parentUuid !== expectedParent.receivedUuid
    ) {
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `stream for commit ${header.commitId} is based on another commit than the expected parent`,
      );
    }
    if (header.parentUuid !== undefined) {
      const base = this.findByUuid(header.parentUuid);
      if (!base)
        throw new DotmeshError('COMMIT_NOT_FOUND', `the parent of incremental commit ${header.commitId} is not in this pool`);
      files = copyTree(base.files);
    }
    for (const e of entries) {
      if (e.op === 'put') files.set(e.path, Buffer.from(e.data, 'base64'));
      else files.delete(e.path);
    }
    if (v.commits.has(header.commitId)) {
      throw new DotmeshError('COMMIT_EXISTS', `commit ${header.commitId} already exists in volume ${id}`);
    }
    const c: MemCommit = {
      id: header.commitId,
      seq: v.nextSeq++,
      meta: clone(header.meta),
      files,
      uuid: randomUUID(),
      receivedUuid: header.uuid,
    };
    v.commits.set(c.id, c);
    return info(c);
  }

  async diff(from: CommitRef, to: CommitRef | LiveRef): Promise<FileChange[]> {
    const base = this.getCommit(from).files;
    return diffTrees(base, isLiveRef(to) ? this.get(to.volumeId).files : this.getCommit(to).files);
  }

  // ---- harness API: stands in for a container writing into the live state ----

  async writeFile(id: string, relPath: string, data: string | Buffer): Promise<void> {
    const v = this.get(id);
    if (v.readOnly) throw Object.assign(new Error(`EROFS: read-only volume ${id}`), { code: 'EROFS' });
    const buf = Buffer.from(data);
    v.files.set(normalize(relPath), buf);
    v.dirty = true;
    v.dirtyBytes += buf.length;
  }
  async removeFile(id: string, relPath: string): Promise<void> {
    const v = this.get(id);
    if (v.files.delete(normalize(relPath))) v.dirty = true;
  }
  async readFile(id: string, relPath: string): Promise<Buffer> {
    return readFrom(this.get(id).files, relPath, `volume ${id}`);
  }
  async readCommitFile(id: string, commitId: string, relPath: string): Promise<Buffer> {
    return readFrom(this.getCommit({ volumeId: id, commitId }).files, relPath, `commit ${commitId} of volume ${id}`);
  }
  /** Files and directories (directories end with `/`). */
  /** Moves a file or a directory (with everything below it), as rename(2). */
  async renamePath(id: string, from: string, to: string): Promise<void> {
    const v = this.get(id);
    const [src, dst] = [normalize(from), normalize(to)];
    for (const [key, data] of [...v.files]) {
      const rest = key === src ? '' : key.startsWith(`${src}/`) ? key.slice(src.length) : undefined;
      if (rest === undefined) continue;
      v.files.delete(key);
      v.files.set(dst + rest, data);
      v.dirty = true;
    }
  }
  /** Removes a file or a directory with everything below it (`rm -r`). */
  async removePath(id: string, relPath: string): Promise<void> {
    const v = this.get(id);
    const p = normalize(relPath);
    for (const key of [...v.files.keys()]) {
      if (key === p || key.startsWith(`${p}/`)) {
        v.files.delete(key);
        v.dirty = true;
      }
    }
  }
  async listFiles(id: string): Promise<string[]> {
    return [...this.get(id).files.keys()].sort();
  }

  private get(id: string): MemVolume {
    const v = this.volumes.get(checkVolumeId(id));
    if (!v) throw new DotmeshError('BRANCH_NOT_FOUND', `volume ${id} does not exist`);
    return v;
  }
  private getCommit(ref: CommitRef): MemCommit {
    const c = this.get(ref.volumeId).commits.get(checkCommitId(ref.commitId));
    if (!c) throw new DotmeshError('COMMIT_NOT_FOUND', `commit ${ref.commitId} not found in volume ${ref.volumeId}`);
    return c;
  }
  private findByUuid(uuid: string): MemCommit | undefined {
    for (const v of this.volumes.values()) {
      for (const c of v.commits.values()) if (c.uuid === uuid || c.receivedUuid === uuid) return c;
    }
    return undefined;
  }
}

function info(c: MemCommit): CommitInfo {
  return { id: c.id, seq: c.seq, meta: clone(c.meta) };
}
function treeBytes(t: Tree): number {
  let n = 0;
  for (const b of t.values()) n += b.length;
  return n;
}
function normalize(relPath: string): string {
  const p = posix.normalize(relPath).replace(/^\/+/, '');
  if (p === '' || p === '.' || p.startsWith('../') || p === '..')
    throw new DotmeshError('INVALID_ARGUMENT', `invalid path ${relPath}`);
  return p;
}
function readFrom(t: Tree, relPath: string, where: string): Buffer {
  const b = t.get(normalize(relPath));
  if (!b) throw new DotmeshError('INVALID_ARGUMENT', `no file ${relPath} in ${where}`, { data: { errno: 'ENOENT' } });
  return Buffer.from(b);
}
