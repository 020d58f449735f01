import { access, constants, lstat, mkdir, readdir, rename, rm, statfs } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
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
  SocketTransferOptions,
  StorageDriver,
  VolumeInfo,
  VolumeLabel,
  VolumeSizes,
} from '../driver.ts';
import type { Exec, ExecLogger } from '../exec.ts';
import { isLiveRef } from '../file-changes.ts';
import { checkCommitId, checkRelPath, checkVolumeId, newOpId, STORAGE_ID_PATTERN } from '../ids.ts';
import { KeyedMutex } from '../keyed-mutex.ts';
import { BtrfsCli } from './btrfs-cli.ts';
import { CommitSizeCache } from './commit-sizes.ts';
import { CommitStore } from './commits.ts';
import { diffLive, diffSnapshots, dropDiffBase } from './diff.ts';
import { exists, fsyncPath, isSubvolumeRoot, listDir, mapFsError, mkdirp, readJsonObject, writeJsonAtomic } from './fsutil.ts';
import { Layout } from './layout.ts';
import { waitForOrphans } from './orphans.ts';
import { readPoolFile } from './pool-format.ts';
import type { PumpConfig, PumpInput } from './pump.ts';
import { purge, type RollbackIntent, recover } from './recovery.ts';
import { volumeSizes } from './sizes.ts';
import { SpaceReserve } from './space-reserve.ts';
import { type ExportRequest, exportCommit, exportCommitTo, importCommit } from './transfer.ts';

export interface BtrfsDriverOptions {
  /** A directory on a mounted btrfs filesystem holding pool.json (see pool.ts). */
  readonly root: string;
  readonly exec: Exec;
  readonly logger?: ExecLogger;
  /** dotmesh-pump, the data path of commit streams (pump.ts). */
  readonly pump: PumpConfig;
}

const noop: ExecLogger = { debug: () => {}, warn: () => {} };
/** How long open() waits for btrfs commands a killed server left running on the pool. */
const ORPHAN_WAIT_MS = 120_000;

/**
 * StorageDriver over a btrfs filesystem: volumes are writable subvolumes, commits read-only
 * snapshots, branches and rollbacks writable snapshots of commits, streams `btrfs send/receive`.
 * Layout and crash rules: layout.ts, recovery.ts and the package README.
 * Concurrency: mutations are serialised per volume (KeyedMutex); different volumes run in
 * parallel; no global lock.
 */
export class BtrfsDriver implements StorageDriver {
  readonly kind = 'btrfs';
  readonly layout: Layout;
  private readonly cli: BtrfsCli;
  private readonly exec: Exec;
  private readonly pump: PumpConfig;
  private readonly logger: ExecLogger;
  private readonly mutex = new KeyedMutex();
  private readonly commits: CommitStore;
  /** volumeId → UUID of its live subvolume; dropped whenever the live is replaced or removed. */
  private readonly liveUuids = new Map<string, string>();
  private readonly referencedCache = new Map<string, { uuid: string; gen: number; bytes: number }>();
  private readonly dirtyCache = new Map<string, { uuid: string; gen: number; baseline: number; bytes: number }>();
  private pool: { poolId: string; formatVersion: number } | undefined;
  private readonly commitSizeCache = new CommitSizeCache();
  /** Data space kept back so that deletes and label writes still work on a full pool. */
  private readonly reserve: SpaceReserve;

  constructor(options: BtrfsDriverOptions) {
    this.layout = new Layout(options.root);
    this.exec = options.exec;
    this.pump = options.pump;
    this.cli = new BtrfsCli(options.exec);
    this.logger = options.logger ?? noop;
    this.commits = new CommitStore(this.layout, this.cli);
    this.reserve = new SpaceReserve({ root: options.root, exec: options.exec, logger: this.logger });
  }

  async open(): Promise<RecoveryReport> {
    const pool = await readPoolFile(this.layout.poolFile);
    if (!pool) {
      throw new DotmeshError('POOL_UNAVAILABLE', `${this.layout.root} is not a dotmesh pool (no pool.json)`, {
        hint: 'initialise it with openPool()',
      });
    }
    this.pool = pool;
    for (const dir of [this.layout.fsDir, this.layout.stagingDir, this.layout.trashDir]) await mkdirp(dir);
    this.commits.reset();
    this.liveUuids.clear();
    this.referencedCache.clear();
    this.dirtyCache.clear();
    this.commitSizeCache.clear();
    await waitForOrphans(this.layout.root, { timeoutMs: ORPHAN_WAIT_MS }, (pids) =>
      this.logger.warn({ pids }, 'waiting for btrfs processes a killed server left on the pool'),
    );
    const actions = await recover(this.layout, this.cli, this.logger);
    await this.reserve.ensure();
    return { actions };
  }

  async close(): Promise<void> {}

  async poolInfo(): Promise<PoolInfo> {
    if (!this.pool) throw new DotmeshError('POOL_UNAVAILABLE', `pool at ${this.layout.root} is not open`);
    const s = await statfs(this.layout.root);
    return { ...this.pool, totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
  }

  async createVolume(id: string, label: VolumeLabel, options: { from?: CommitRef } = {}): Promise<void> {
    checkVolumeId(id);
    return this.mutex.run(id, async () => {
      if (await exists(this.layout.volume(id))) throw new DotmeshError('CONFLICT', `volume ${id} already exists`);
      const source = options.from ? await this.existingCommit(options.from) : undefined;
      const opDir = this.layout.staging(newOpId());
      const dir = join(opDir, 'vol');
      try {
        await mkdirp(join(dir, 'commits'));
        if (source) await this.cli.snapshot(source, join(dir, 'live'), { readonly: false });
        else await this.cli.create(join(dir, 'live'));
        await writeJsonAtomic(join(dir, 'label.json'), label);
        await writeJsonAtomic(join(dir, 'state.json'), { seqFloor: 0 });
        await this.cli.sync(this.layout.root);
        try {
          await rename(dir, this.layout.volume(id));
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new DotmeshError('CONFLICT', `volume ${id} already exists`);
          throw e;
        }
        await fsyncPath(this.layout.fsDir);
        this.liveUuids.delete(id);
      } finally {
        await purge(this.cli, opDir);
      }
    });
  }

  async writeLabel(id: string, label: VolumeLabel): Promise<void> {
    checkVolumeId(id);
    await this.mutex.run(id, async () => {
      await this.requireVolume(id);
      await this.reserve.withReserve(() => writeJsonAtomic(this.layout.label(id), label));
    });
  }

  async readLabel(id: string): Promise<VolumeLabel> {
    await this.requireVolume(id);
    const label = await readJsonObject(this.layout.label(id));
    if (!label) throw new DotmeshError('BRANCH_NOT_FOUND', `volume ${id} has no label`);
    return label;
  }

  /** Rename into trash (atomic: gone from listVolumes), then delete its subvolumes. */
  async deleteVolume(id: string): Promise<void> {
    checkVolumeId(id);
    return this.mutex.run(id, async () => {
      if (!(await exists(this.layout.volume(id)))) return;
      const trash = this.layout.trash(`${newOpId()}-${id}`);
      await rename(this.layout.volume(id), trash);
      await fsyncPath(this.layout.trashDir);
      await fsyncPath(this.layout.fsDir);
      this.commits.forget(id);
      this.liveUuids.delete(id);
      this.commitSizeCache.forget(id);
      await purge(this.cli, trash);
    });
  }

  async listVolumes(): Promise<VolumeInfo[]> {
    const out: VolumeInfo[] = [];
    for (const id of await listDir(this.layout.fsDir)) {
      if (!STORAGE_ID_PATTERN.test(id)) continue;
      const label = await readJsonObject(this.layout.label(id)).catch(() => undefined);
      if (label) out.push({ id, label });
    }
    return out;
  }

  volumePath(id: string): string {
    return this.layout.live(id);
  }

  /** The live subvolume's `ro` property: the kernel refuses writes through every path to it. */
  async setLiveReadOnly(id: string, readOnly: boolean): Promise<void> {
    checkVolumeId(id);
    return this.mutex.run(id, async () => {
      await this.requireVolume(id);
      await this.cli.setReadOnly(this.layout.live(id), readOnly);
    });
  }

  async liveReadOnly(id: string): Promise<boolean> {
    checkVolumeId(id);
    await this.requireVolume(id);
    return this.#isReadOnly(this.layout.live(id));
  }

  /** access(W_OK) answers EROFS for a read-only subvolume, even for root: no subprocess. */
  async #isReadOnly(path: string): Promise<boolean> {
    try {
      await access(path, constants.W_OK);
      return false;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EROFS') return true;
      return mapFsError(e, `checking ${path}`);
    }
  }

  /**
   * mkdir of each missing segment inside the live state. Refuses to follow a symlink (a
   * container could plant one pointing out of the volume); a container racing to swap a
   * directory for a symlink between the check and the mkdir is not defended against.
   */
  async ensureDirectory(id: string, relPath: string): Promise<void> {
    checkVolumeId(id);
    const parts = checkRelPath(relPath);
    return this.mutex.run(id, async () => {
      await this.requireVolume(id);
      let path = this.layout.live(id);
      for (const part of parts) {
        path = join(path, part);
        const s = await lstat(path).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return undefined;
          throw e;
        });
        if (!s) await mkdir(path).catch((e: unknown) => mapFsError(e, `creating ${relPath} in volume ${id}`));
        else if (!s.isDirectory()) {
          throw new DotmeshError('CONFLICT', `${relPath} in volume ${id} exists and is not a directory (${part})`);
        }
      }
    });
  }

  /** Refuses when a segment above the last is a symlink (a container could plant one). */
  async removeDirectory(id: string, relPath: string): Promise<void> {
    checkVolumeId(id);
    const parts = checkRelPath(relPath);
    return this.mutex.run(id, async () => {
      await this.requireVolume(id);
      const path = await this.#insideLive(id, parts);
      if (path === undefined) return;
      await rm(path, { recursive: true, force: true }).catch((e: unknown) =>
        mapFsError(e, `removing ${relPath} in volume ${id}`),
      );
    });
  }

  async listDirectory(id: string, relPath: string): Promise<string[]> {
    checkVolumeId(id);
    const parts = relPath === '' ? [] : checkRelPath(relPath);
    await this.requireVolume(id);
    const path = parts.length === 0 ? this.layout.live(id) : await this.#insideLive(id, parts);
    if (path === undefined) return [];
    const s = await lstat(path).catch(() => undefined);
    if (!s?.isDirectory()) return [];
    return (await readdir(path)).sort();
  }

  /** The path of `parts` in the live data if every segment above the last is a real directory. */
  async #insideLive(id: string, parts: readonly string[]): Promise<string | undefined> {
    let path = this.layout.live(id);
    for (const [i, part] of parts.entries()) {
      path = join(path, part);
      if (i === parts.length - 1) break;
      const s = await lstat(path).catch(() => undefined);
      if (!s) return undefined;
      if (!s.isDirectory()) throw new DotmeshError('CONFLICT', `${parts.join('/')} in volume ${id}: ${part} is not a directory`);
    }
    return path;
  }

  async commit(id: string, commitId: string, meta: CommitMeta): Promise<CommitInfo> {
    checkVolumeId(id);
    checkCommitId(commitId);
    return this.mutex.run(id, async () => {
      await this.requireVolume(id);
      await this.reserve.ensure();
      // A read-only live (setLiveReadOnly) takes the meta file for the moment of the snapshot.
      const live = this.layout.live(id);
      const readOnly = await this.#isReadOnly(live);
      if (readOnly) await this.cli.setReadOnly(live, false);
      let info: CommitInfo;
      try {
        info = await this.commits.commit(id, commitId, meta);
      } finally {
        if (readOnly) await this.cli.setReadOnly(live, true);
      }
      await dropDiffBase(this.cli, this.layout, id); // the new commit is the live's clean baseline now
      return info;
    });
  }

  async listCommits(id: string): Promise<CommitInfo[]> {
    await this.requireVolume(id);
    return this.commits.list(id);
  }

  async deleteCommit(id: string, commitId: string): Promise<void> {
    checkVolumeId(id);
    checkCommitId(commitId);
    return this.mutex.run(id, async () => {
      if (await exists(this.layout.volume(id))) await this.reserve.withReserve(() => this.commits.delete(id, commitId));
    });
  }

  commitPath(id: string, commitId: string): string {
    return this.layout.commit(id, commitId);
  }

  /**
   * Steps: intent.json → writable snapshot `new` → rename live→`old` → rename `new`→live →
   * delete `old`. recovery.ts finishes or undoes it from any point. Creating the snapshot
   * commits the btrfs transaction before the ioctl returns (as in CommitStore.commit), so `new`
   * is on disk before the renames: no separate sync.
   */
  async rollback(id: string, to: CommitRef): Promise<void> {
    checkVolumeId(id);
    return this.mutex.run(id, async () => {
      await this.requireVolume(id);
      const source = await this.existingCommit(to);
      const opDir = this.layout.staging(newOpId());
      try {
        await mkdirp(opDir);
        const intent: RollbackIntent = { kind: 'rollback', volumeId: id, commitId: to.commitId };
        await this.reserve.withReserve(() => writeJsonAtomic(join(opDir, 'intent.json'), intent));
        await this.cli.snapshot(source, join(opDir, 'new'), { readonly: false });
        this.liveUuids.delete(id);
        // btrfs refuses (EROFS) to move a read-only subvolume to another directory; the old
        // live is discarded, the new one is writable.
        if (await this.#isReadOnly(this.layout.live(id))) await this.cli.setReadOnly(this.layout.live(id), false);
        await rename(this.layout.live(id), join(opDir, 'old'));
        await rename(join(opDir, 'new'), this.layout.live(id));
        this.liveUuids.delete(id); // again: a concurrent sizes() may have cached the old live meanwhile
        await fsyncPath(this.layout.volume(id));
        await fsyncPath(opDir);
        await dropDiffBase(this.cli, this.layout, id);
      } finally {
        await purge(this.cli, opDir);
      }
    });
  }

  async sizes(ids?: readonly string[], o: { readonly referenced?: boolean } = {}): Promise<Map<string, VolumeSizes>> {
    let wanted: string[];
    if (ids) {
      for (const id of ids) await this.requireVolume(id);
      wanted = [...ids];
    } else {
      // Every volume there is: a folder whose live subvolume is not made yet (a volume being
      // created, e.g. by an incoming transfer) is not one yet, and must not fail the listing.
      const dirs = (await listDir(this.layout.fsDir)).filter((id) => STORAGE_ID_PATTERN.test(id));
      wanted = [];
      for (const id of dirs) if (await isSubvolumeRoot(this.layout.live(id))) wanted.push(id);
    }
    return volumeSizes({
      exec: this.exec,
      cli: this.cli,
      layout: this.layout,
      ids: wanted,
      logger: this.logger,
      liveUuids: this.liveUuids,
      referencedCache: this.referencedCache,
      dirtyCache: this.dirtyCache,
      referenced: o.referenced !== false,
    });
  }

  async commitSizes(id: string): Promise<Map<string, CommitSizes>> {
    await this.requireVolume(id);
    return this.commitSizeCache.measure({ exec: this.exec, cli: this.cli, layout: this.layout, volumeId: id });
  }

  exportCommit(id: string, commitId: string, options: { parent?: CommitRef } = {}): Readable {
    return exportCommit(this.exportRequest(id, commitId, options.parent));
  }

  exportCommitTo(
    id: string,
    commitId: string,
    socket: Socket,
    options: SocketTransferOptions & { readonly parent?: CommitRef },
  ): Promise<void> {
    return exportCommitTo({ ...this.exportRequest(id, commitId, options.parent), socket, options });
  }

  importCommit(
    id: string,
    stream: Readable,
    options: { readonly parent?: CommitRef; readonly onProgress?: (bytes: number) => void } = {},
  ): Promise<CommitInfo> {
    return this.importFrom(id, { stream }, options.parent, options.onProgress ? { onProgress: options.onProgress } : {});
  }

  importCommitFrom(
    id: string,
    socket: Socket,
    options: SocketTransferOptions & { readonly parent?: CommitRef; readonly onReady: () => void },
  ): Promise<CommitInfo> {
    return this.importFrom(id, { socket, onReady: options.onReady }, options.parent, options);
  }

  private exportRequest(id: string, commitId: string, parent: CommitRef | undefined): ExportRequest {
    return { exec: this.exec, layout: this.layout, pump: this.pump, ref: { volumeId: id, commitId }, parent };
  }

  private async importFrom(
    id: string,
    input: PumpInput,
    parent: CommitRef | undefined,
    options: Partial<SocketTransferOptions>,
  ): Promise<CommitInfo> {
    checkVolumeId(id);
    return this.mutex.run(id, async () => {
      await this.requireVolume(id);
      if (parent) await this.existingCommit(parent);
      return importCommit({
        exec: this.exec,
        cli: this.cli,
        layout: this.layout,
        commits: this.commits,
        pump: this.pump,
        volumeId: id,
        input,
        parent,
        options,
      });
    });
  }

  /** send --no-data | receive --dump; the live side through a temporary snapshot (diff.ts). */
  async diff(from: CommitRef, to: CommitRef | LiveRef): Promise<FileChange[]> {
    const fromPath = await this.existingCommit(from);
    if (!isLiveRef(to)) return diffSnapshots(this.exec, fromPath, await this.existingCommit(to));
    await this.requireVolume(to.volumeId);
    return diffLive({ exec: this.exec, cli: this.cli, layout: this.layout, mutex: this.mutex }, fromPath, to.volumeId);
  }

  private async requireVolume(id: string): Promise<void> {
    if (!(await isSubvolumeRoot(this.layout.live(checkVolumeId(id))))) {
      throw new DotmeshError('BRANCH_NOT_FOUND', `volume ${id} does not exist`);
    }
  }

  /** Path of an existing commit, or COMMIT_NOT_FOUND. */
  private async existingCommit(ref: CommitRef): Promise<string> {
    const path = this.layout.commit(ref.volumeId, ref.commitId);
    if (!(await isSubvolumeRoot(path))) {
      throw new DotmeshError('COMMIT_NOT_FOUND', `commit ${ref.commitId} not found in volume ${ref.volumeId}`);
    }
    return path;
  }
}
