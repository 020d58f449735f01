import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { DotmeshError } from '@dotmesh/core';
import type { CommitInfo, CommitRef } from '../driver.ts';
import { type Exec, ExecError } from '../exec.ts';
import { newOpId, STORAGE_ID_PATTERN } from '../ids.ts';
import type { BtrfsCli } from './btrfs-cli.ts';
import type { CommitStore } from './commits.ts';
import { fsyncPath, isSubvolumeRoot, listDir, mkdirp, readJsonObject, writeJsonAtomic } from './fsutil.ts';
import { type Layout, metaFileIn } from './layout.ts';
import { purge } from './recovery.ts';

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
 * An incremental stream needs its parent here (found by btrfs via received UUID or UUID).
 */
export async function importCommit(o: {
  exec: Exec;
  cli: BtrfsCli;
  layout: Layout;
  commits: CommitStore;
  volumeId: string;
  stream: Readable;
}): Promise<CommitInfo> {
  const id = o.volumeId;
  const opDir = o.layout.staging(newOpId());
  const recvDir = join(opDir, 'box');
  try {
    await mkdirp(recvDir);
    await receive(o.exec, recvDir, o.stream, id);
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

function receive(exec: Exec, dir: string, stream: Readable, volumeId: string): Promise<void> {
  const args = ['receive', '-e', '-E', '1', '--chroot', dir];
  const child = exec.spawn('btrfs', args);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout?.resume();
  return new Promise<void>((resolve, reject) => {
    let sourceError: Error | undefined;
    stream.once('error', (e) => {
      sourceError = e;
      child.kill('SIGKILL');
    });
    child.stdin?.on('error', () => {}); // EPIPE if receive dies first; its exit code tells why
    stream.pipe(child.stdin!);
    child.once('error', reject);
    child.once('close', (code) => {
      stream.unpipe(child.stdin!);
      if (sourceError) {
        reject(
          new DotmeshError('UNAVAILABLE', `stream into volume ${volumeId} failed: ${sourceError.message}`, {
            cause: sourceError,
          }),
        );
      } else if (code !== 0) reject(new ExecError('btrfs', args, code, stderr));
      else resolve();
    });
  });
}
