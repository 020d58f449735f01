import { rename, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { DotmeshError } from '@dotmesh/core';
import type { CommitInfo, CommitRef, SocketTransferOptions } from '../driver.ts';
import type { Exec } from '../exec.ts';
import { PIPELINE_HIGH_WATER_MARK } from '../frames.ts';
import { newOpId, STORAGE_ID_PATTERN } from '../ids.ts';
import type { BtrfsCli, SubvolumeListEntry } from './btrfs-cli.ts';
import type { CommitStore } from './commits.ts';
import { isSubvolumeRoot, listDir, mkdirp, readJsonObject, writeJsonAtomic } from './fsutil.ts';
import { type Layout, metaFileIn } from './layout.ts';
import { type PumpConfig, type PumpInput, pumpReceive, pumpSendInto, pumpSendStream } from './pump.ts';
import { purge } from './recovery.ts';
import { plainFileIn, SendStreamCheck, type SendStreamSubvolume } from './send-stream-check.ts';

/** How an export is made: the commit, its optional parent, and the pump. */
export interface ExportRequest {
  readonly exec: Exec;
  readonly layout: Layout;
  readonly pump: PumpConfig;
  readonly ref: CommitRef;
  readonly parent?: CommitRef | undefined;
}

/** `btrfs send` arguments for a commit, after checking it (and its parent) exist. */
async function sendArgs(o: ExportRequest): Promise<string[]> {
  const path = o.layout.commit(o.ref.volumeId, o.ref.commitId);
  const parentPath = o.parent ? o.layout.commit(o.parent.volumeId, o.parent.commitId) : undefined;
  for (const [p, ref] of [
    [path, o.ref],
    [parentPath, o.parent],
  ] as const) {
    if (p && ref && !(await isSubvolumeRoot(p))) {
      throw new DotmeshError('COMMIT_NOT_FOUND', `commit ${ref.commitId} not found in volume ${ref.volumeId}`);
    }
  }
  return ['send', '-q', ...(parentPath ? ['-p', parentPath] : []), path];
}

/**
 * `btrfs send [-p parent] commit`, framed (frames.ts) by dotmesh-pump, as a Readable. The
 * stream ends only after its end frame, written once `btrfs send` exited 0; any failure
 * (missing commit, send error) surfaces as a stream error. Destroying the stream kills the pump.
 */
export function exportCommit(o: ExportRequest): Readable {
  const out = new PassThrough({ highWaterMark: PIPELINE_HIGH_WATER_MARK });
  sendArgs(o).then(
    (args) => {
      if (!out.destroyed) pumpSendStream({ exec: o.exec, config: o.pump, sendArgs: args, out });
    },
    (e: Error) => out.destroy(e),
  );
  return out;
}

/** The same framed stream, written by dotmesh-pump straight into a plain TCP socket. */
export async function exportCommitTo(o: ExportRequest & { socket: Socket; options: SocketTransferOptions }): Promise<void> {
  const args = await sendArgs(o);
  await pumpSendInto({
    exec: o.exec,
    config: o.pump,
    sendArgs: args,
    socket: o.socket,
    idleMs: o.options.idleTimeoutMs,
    onProgress: o.options.onProgress,
    ...(o.options.tls ? { tls: o.options.tls } : {}),
  });
}

/**
 * Receives one framed commit stream into volume `volumeId`: dotmesh-pump reads it up to its end
 * frame (from a Node stream, or a plain TCP socket it reads itself), verifies each frame before
 * any of its bytes goes on, and feeds `btrfs receive -e -E 1 --chroot` into staging/<op>/box,
 * flushing the pool in the background as the data goes (so the final sync finds little left to
 * write). Then it checks the result (exactly one subvolume, named by a valid commit
 * id, read-only with a received UUID — set by btrfs only once the stream completed — and
 * holding its meta file), records its local seq in imported/<id>.json, renames it into
 * commits/ and syncs. Any failure deletes the staging directory: nothing becomes visible.
 * SendStreamCheck sees the stream's metadata (pump.ts) and approves every command that is not
 * plain data before `btrfs receive` gets it: the stream must be incremental from `parent` (the
 * caller checked it exists) when given, else full, and may clone data only from itself or
 * that parent (btrfs would take any subvolume of the filesystem); otherwise INVALID_ARGUMENT.
 *
 * One subvolume per UUID value in the pool. `btrfs receive` finds a parent (and clone sources) by received
 * UUID first, then by UUID, anywhere in the filesystem, and gives the new subvolume the
 * stream's UUID as received UUID. So a stream whose UUID equals the UUID or received UUID of a
 * commit of another volume would plant a subvolume that a later legitimate incremental stream
 * from that commit resolves to. The pool keeps "no two subvolumes share a UUID / received UUID
 * value" (local commits get fresh UUIDs; a commit is received at most once per pool):
 *  - before `btrfs receive` sees the first command (SendStreamCheck's checkSubvolume):
 *    COMMIT_EXISTS when the volume holds that commit id; INVALID_ARGUMENT when any subvolume
 *    of the filesystem has the stream's UUID as UUID or received UUID, or when the expected
 *    parent's UUIDs also name another subvolume (ambiguous parent; impossible while the
 *    invariant holds, so it only trips on a pool damaged before this check existed);
 *  - after `btrfs receive`, before the commit becomes visible: the new subvolume carries the
 *    stream's UUID, no other subvolume does (two imports of one UUID raced past the first
 *    check: at most one of them survives this), and it is a snapshot of the expected parent
 *    itself (of nothing for a full stream) — what btrfs receive actually resolved.
 * Cost: two `btrfs subvolume list` (tree search ioctls, one process) per import, linear in the
 * filesystem's subvolumes: ~11 ms each, spawn and parse included, for 2,000 subvolumes (~370 KB
 * of output). btrfs-progs has no lookup by UUID cheaper than that: `subvolume show -u` scans
 * every subvolume too, and nothing looks up a received UUID.
 */
export async function importCommit(o: {
  exec: Exec;
  cli: BtrfsCli;
  layout: Layout;
  commits: CommitStore;
  pump: PumpConfig;
  volumeId: string;
  input: PumpInput;
  parent?: CommitRef | undefined;
  options?: Partial<SocketTransferOptions>;
}): Promise<CommitInfo> {
  const id = o.volumeId;
  const opDir = o.layout.staging(newOpId());
  const recvDir = join(opDir, 'box');
  try {
    const parent = o.parent ? await expectedParent(o.cli, o.layout, o.parent) : undefined;
    const check = new SendStreamCheck({
      elidedPayloads: true,
      parentUuids: parent ? parent.uuids : null,
      ...(parent ? { checkParentClonePath: plainFileIn(parent.path) } : {}),
      checkSubvolume: (s) => checkNewSubvolume(o, parent, s),
    });
    await mkdirp(recvDir);
    await pumpReceive({
      exec: o.exec,
      config: o.pump,
      receiveArgs: ['receive', '-e', '-E', '1', '--chroot', recvDir],
      input: o.input,
      check,
      what: `stream into volume ${id}`,
      syncDir: o.layout.root,
      idleMs: o.options?.idleTimeoutMs,
      onProgress: o.options?.onProgress,
      ...(o.options?.tls ? { tls: o.options.tls } : {}),
    });
    const names = await listDir(recvDir);
    const commitId = names[0];
    if (names.length !== 1 || commitId === undefined || !STORAGE_ID_PATTERN.test(commitId)) {
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `stream for volume ${id} must hold exactly one commit, got ${JSON.stringify(names)}`,
      );
    }
    const received = join(recvDir, commitId);
    // The received subvolume and the pool's listing, read at once (two processes side by side).
    const [show, pool] = await Promise.all([
      isSubvolumeRoot(received).then((root) => (root ? o.cli.show(received) : undefined)),
      o.cli.list(o.layout.root),
    ]);
    if (!show?.readonly || !show.receivedUuid) {
      throw new DotmeshError('INVALID_ARGUMENT', `commit ${commitId} for volume ${id} arrived incomplete`);
    }
    const streamed = check.summary.subvolume;
    if (streamed?.path !== commitId) throw new Error(`received ${commitId}, but the stream named ${streamed?.path}`);
    checkReceivedSubvolume(pool, parent, streamed, show.uuid);
    const meta = await readReceivedMeta(received, commitId);
    if (!meta) throw new DotmeshError('INVALID_METADATA', `received commit ${commitId} of volume ${id} has no metadata file`);
    if (await isSubvolumeRoot(o.layout.commit(id, commitId))) {
      throw new DotmeshError('COMMIT_EXISTS', `commit ${commitId} already exists in volume ${id}`);
    }
    await rm(o.layout.commitBox(id, commitId), { recursive: true, force: true });
    const seq = await o.commits.reserve(id);
    await writeJsonAtomic(join(recvDir, 'seq.json'), { seq });
    await mkdirp(o.layout.commitsDir(id));
    await rename(recvDir, o.layout.commitBox(id, commitId));
    // The durability point: the pool's sync flushes the data and commits the btrfs transaction
    // that holds the rename and everything before it, so no fsync of the directory comes first
    // (on btrfs, fsync of a directory after a rename commits a whole transaction of its own).
    await o.cli.sync(o.layout.root);
    return { id: commitId, seq, meta };
  } finally {
    await purge(o.cli, opDir);
  }
}

/** The server's meta of a received commit, or undefined when its meta file is missing/invalid. */
async function readReceivedMeta(subvolume: string, commitId: string): Promise<Record<string, unknown> | undefined> {
  const file = await readJsonObject(metaFileIn(subvolume, commitId)).catch(() => undefined);
  return file?.meta && typeof file.meta === 'object' && !Array.isArray(file.meta)
    ? (file.meta as Record<string, unknown>)
    : undefined;
}

/** The commit an incremental stream must be based on. */
interface ExpectedParent {
  readonly ref: CommitRef;
  readonly path: string;
  /** Its own UUID: the parent UUID of a subvolume `btrfs receive` snapshots from it. */
  readonly uuid: string;
  /** Its UUID and received UUID: what a stream may name it by. */
  readonly uuids: readonly string[];
}

async function expectedParent(cli: BtrfsCli, layout: Layout, ref: CommitRef): Promise<ExpectedParent> {
  const path = layout.commit(ref.volumeId, ref.commitId);
  const show = await cli.show(path);
  return { ref, path, uuid: show.uuid, uuids: show.receivedUuid ? [show.uuid, show.receivedUuid] : [show.uuid] };
}

/** Which of a subvolume's UUIDs is `uuid`, if any. */
const holds = (e: SubvolumeListEntry, uuid: string): 'UUID' | 'received UUID' | undefined =>
  e.uuid === uuid ? 'UUID' : e.receivedUuid === uuid ? 'received UUID' : undefined;

const alreadyInPool = (uuid: string, how: string) =>
  new DotmeshError(
    'INVALID_ARGUMENT',
    `the stream's subvolume uuid ${uuid} is already in this pool (${how}; a commit is received at most once per pool)`,
  );

/**
 * SendStreamCheck's checkSubvolume for importCommit: run once the first command was decoded,
 * before `btrfs receive` sees it (see importCommit). Error messages name no other subvolume:
 * they go back to the peer.
 */
async function checkNewSubvolume(
  o: { cli: BtrfsCli; layout: Layout; volumeId: string },
  parent: ExpectedParent | undefined,
  s: SendStreamSubvolume,
): Promise<void> {
  if (await isSubvolumeRoot(o.layout.commit(o.volumeId, s.path))) {
    throw new DotmeshError('COMMIT_EXISTS', `commit ${s.path} already exists in volume ${o.volumeId}`);
  }
  const pool = await o.cli.list(o.layout.root);
  for (const e of pool) {
    const how = holds(e, s.uuid);
    if (how) throw alreadyInPool(s.uuid, `it is the ${how} of another subvolume`);
  }
  if (!parent) return;
  if (!pool.some((e) => e.uuid === parent.uuid)) {
    throw new DotmeshError('COMMIT_NOT_FOUND', `commit ${parent.ref.commitId} not found in volume ${parent.ref.volumeId}`);
  }
  const others = pool.filter((e) => e.uuid !== parent.uuid && parent.uuids.some((u) => holds(e, u)));
  if (others.length > 0) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `the parent commit ${parent.ref.commitId} is ambiguous in this pool: ${others.length} other subvolume(s) carry its uuid (${parent.uuids.join(' or ')}), which btrfs receive could take instead`,
    );
  }
}

/**
 * After `btrfs receive`, before the commit becomes visible: the received subvolume (UUID
 * `localUuid`) carries the stream's UUID and nothing else does in the `pool`'s listing (made
 * after the receive), and btrfs based it on the expected parent (see importCommit).
 */
function checkReceivedSubvolume(
  pool: readonly SubvolumeListEntry[],
  parent: ExpectedParent | undefined,
  s: SendStreamSubvolume,
  localUuid: string,
): void {
  const self = pool.find((e) => e.uuid === localUuid);
  if (self?.receivedUuid !== s.uuid) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `commit ${s.path} arrived with received uuid ${self?.receivedUuid ?? 'none'}, not the stream's ${s.uuid}`,
    );
  }
  for (const e of pool) {
    const how = e === self ? undefined : holds(e, s.uuid);
    if (how) throw alreadyInPool(s.uuid, `received concurrently: it is the ${how} of another subvolume`);
  }
  if (self.parentUuid !== parent?.uuid) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `btrfs receive based commit ${s.path} on subvolume ${self.parentUuid ?? 'none'}, not on ${parent ? `the parent commit ${parent.ref.commitId} (${parent.uuid})` : 'nothing (full stream)'}`,
    );
  }
}
