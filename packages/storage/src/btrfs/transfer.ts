import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import type { CommitInfo, CommitRef } from '../driver.ts';
import { type Exec, ExecError } from '../exec.ts';
import { newOpId, STORAGE_ID_PATTERN } from '../ids.ts';
import type { BtrfsCli, SubvolumeListEntry } from './btrfs-cli.ts';
import type { CommitStore } from './commits.ts';
import { fsyncPath, isSubvolumeRoot, listDir, mkdirp, readJsonObject, writeJsonAtomic } from './fsutil.ts';
import { type Layout, metaFileIn } from './layout.ts';
import { purge } from './recovery.ts';
import { plainFileIn, SendStreamCheck, type SendStreamSubvolume } from './send-stream-check.ts';

/**
 * `btrfs send [-p parent] commit` as a Readable. The stream ends only after `btrfs send`
 * exited 0; any failure (missing commit, send error) surfaces as a stream error. Destroying
 * the stream kills the child.
 */
export function exportCommit(o: { exec: Exec; layout: Layout; ref: CommitRef; parent?: CommitRef | undefined }): Readable {
  const out = new PassThrough();
  void (async () => {
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
    const args = ['send', '-q', ...(parentPath ? ['-p', parentPath] : []), path];
    const child = o.exec.spawn('btrfs', args, { stdin: 'ignore' });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    out.once('close', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    child.stdout?.pipe(out, { end: false });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    if (code !== 0) throw new ExecError('btrfs', args, code, stderr);
    out.end();
  })().catch((e: unknown) => out.destroy(e instanceof Error ? e : new Error(String(e))));
  return out;
}

/**
 * Receives one commit into volume `volumeId`: `btrfs receive -e -E 1 --chroot` into
 * staging/<op>/recv, then checks the result (exactly one subvolume, named by a valid commit
 * id, read-only with a received UUID — set by btrfs only once the stream completed — and
 * holding its meta file), records its local seq in imported/<id>.json, renames it into
 * commits/ and syncs. Any failure deletes the staging directory: nothing becomes visible.
 * The stream flows through SendStreamCheck first: it must be incremental from `parent` (the
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
  volumeId: string;
  stream: Readable;
  parent?: CommitRef | undefined;
}): Promise<CommitInfo> {
  const id = o.volumeId;
  const opDir = o.layout.staging(newOpId());
  const recvDir = join(opDir, 'box');
  try {
    const parent = o.parent ? await expectedParent(o.cli, o.layout, o.parent) : undefined;
    const check = new SendStreamCheck({
      parentUuids: parent ? parent.uuids : null,
      ...(parent ? { checkParentClonePath: plainFileIn(parent.path) } : {}),
      checkSubvolume: (s) => checkNewSubvolume(o, parent, s),
    });
    await mkdirp(recvDir);
    await receive(o.exec, recvDir, o.stream, id, check);
    const names = await listDir(recvDir);
    const commitId = names[0];
    if (names.length !== 1 || commitId === undefined || !STORAGE_ID_PATTERN.test(commitId)) {
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `stream for volume ${id} must hold exactly one commit, got ${JSON.stringify(names)}`,
      );
    }
    const received = join(recvDir, commitId);
    const show = (await isSubvolumeRoot(received)) ? await o.cli.show(received) : undefined;
    if (!show?.readonly || !show.receivedUuid) {
      throw new DotmeshError('INVALID_ARGUMENT', `commit ${commitId} for volume ${id} arrived incomplete`);
    }
    const streamed = check.summary.subvolume;
    if (streamed?.path !== commitId) throw new Error(`received ${commitId}, but the stream named ${streamed?.path}`);
    await checkReceivedSubvolume(o, parent, streamed, show.uuid);
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
    await fsyncPath(o.layout.commitsDir(id));
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
 * `localUuid`) carries the stream's UUID and nothing else does, and btrfs based it on the
 * expected parent (see importCommit).
 */
async function checkReceivedSubvolume(
  o: { cli: BtrfsCli; layout: Layout },
  parent: ExpectedParent | undefined,
  s: SendStreamSubvolume,
  localUuid: string,
): Promise<void> {
  const pool = await o.cli.list(o.layout.root);
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

/**
 * source → check → `btrfs receive` into `dir`. Settles once receive exited and the check saw
 * the whole stream end (receive may exit at END before the source ended: the rest still goes
 * through the check, which refuses any byte after END). Errors, by priority: the check's
 * (INVALID_ARGUMENT, as is), the source's (UNAVAILABLE), receive's exit code (ExecError).
 * Either of the first two kills receive at once.
 */
function receive(exec: Exec, dir: string, source: Readable, volumeId: string, check: SendStreamCheck): Promise<void> {
  const args = ['receive', '-e', '-E', '1', '--chroot', dir];
  const child = exec.spawn('btrfs', args);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout?.resume();
  const stdin = child.stdin!;
  return new Promise<void>((resolve, reject) => {
    let checkError: Error | undefined;
    let sourceError: Error | undefined;
    const failure = () => checkError ?? sourceError;
    // finished() also reports a source that failed before we got here (its 'error' is gone).
    finished(source).catch((e: Error) => {
      sourceError = isDotmeshError(e)
        ? e
        : new DotmeshError('UNAVAILABLE', `stream into volume ${volumeId} failed: ${e.message}`, { cause: e });
      child.kill('SIGKILL');
      // pipe() does not end the check on a source error: stop it, or a receive that already
      // exited 0 would wait for it forever.
      check.destroy();
    });
    check.once('error', (e) => {
      checkError =
        e instanceof DotmeshError
          ? new DotmeshError(e.code, `stream into volume ${volumeId} refused: ${e.message}`, { cause: e })
          : e;
      child.kill('SIGKILL');
    });
    const checked = finished(check);
    checked.catch(() => {}); // reported through checkError
    stdin.on('error', () => {}); // EPIPE if receive dies first; its exit code tells why
    source.pipe(check).pipe(stdin);
    child.once('error', reject);
    child.once('close', (code) => {
      check.unpipe(stdin);
      if (failure() || code !== 0) {
        source.unpipe(check);
        reject(failure() ?? new ExecError('btrfs', args, code, stderr));
        return;
      }
      check.resume(); // receive stopped reading at END: drain the rest through the check
      checked.then(
        () => (failure() ? reject(failure()) : resolve()),
        () => reject(failure() ?? new DotmeshError('UNAVAILABLE', `stream into volume ${volumeId} ended early`)),
      );
    });
  });
}
