import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { FileChange } from '../driver.ts';
import { type Exec, ExecError } from '../exec.ts';
import { finishChanges } from '../file-changes.ts';
import { newOpId } from '../ids.ts';
import type { KeyedMutex } from '../keyed-mutex.ts';
import type { BtrfsCli } from './btrfs-cli.ts';
import { exists, fsyncPath, isSubvolumeRoot, mkdirp } from './fsutil.ts';
import type { Layout } from './layout.ts';
import { purge } from './recovery.ts';
import { type DumpSummary, SendDumpParser } from './send-dump.ts';

/**
 * Diffs on btrfs: `btrfs send --no-data -p <from> <to> | btrfs receive --dump`, parsed by
 * send-dump.ts. The stream carries metadata only, so the cost follows the number of changed
 * entries, never the amount of data.
 *
 * The live state is diffed through a temporary read-only snapshot of it, taken into
 * `staging/<op>/` (removed at the end, or by recovery after a crash). Taking a snapshot raises
 * the live's generation, which sizes() would then read as dirty: so when the live was clean
 * just before (gen == its baseline, under the volume's mutex) and the snapshot proves equal
 * to the baseline's snapshot (a send stream without a single operation), the snapshot is kept
 * as `fs/<id>/diff/base`: a snapshot of the live whose cgen is the live's new generation, i.e.
 * the new clean baseline. A write racing with the snapshot either lands in it (the streams
 * differ: not kept, the live reads dirty) or after it (the live's generation moves past it).
 * The kept snapshot equals the newest commit, so it pins no extra space; commit and rollback
 * drop it (dropDiffBase).
 * Concurrency: `from` is read without the volume's mutex; btrfs refuses to delete a snapshot
 * while it is being sent, so deleting a commit (or its volume) during a diff of it fails: the
 * server keeps them apart with the dot's lock (diffs shared, rollback/delete exclusive).
 */
export interface DiffDeps {
  readonly exec: Exec;
  readonly cli: BtrfsCli;
  readonly layout: Layout;
  /** The driver's per-volume mutex (key = volume id); `diff:<id>` serialises live diffs. */
  readonly mutex: KeyedMutex;
}

/** Changes from the read-only snapshot `fromPath` to the read-only snapshot `toPath`. */
export async function diffSnapshots(exec: Exec, fromPath: string, toPath: string): Promise<FileChange[]> {
  return finishChanges((await sendDump(exec, fromPath, toPath)).changes);
}

/** Changes from the read-only snapshot `fromPath` to the live state of `volumeId` (which exists). */
export async function diffLive(d: DiffDeps, fromPath: string, volumeId: string): Promise<FileChange[]> {
  return d.mutex.run(`diff:${volumeId}`, async () => {
    const opDir = d.layout.staging(newOpId());
    const box = join(opDir, 'box');
    const snap = join(box, 'base');
    try {
      await mkdirp(box);
      const reference = await d.mutex.run(volumeId, async () => {
        const ref = await cleanReference(d, volumeId);
        await d.cli.snapshot(d.layout.live(volumeId), snap, { readonly: true });
        return ref;
      });
      const result = await sendDump(d.exec, fromPath, snap);
      if (reference !== undefined) {
        const same =
          reference === fromPath ? result.operations === 0 : (await sendDump(d.exec, reference, snap)).operations === 0;
        if (same) await d.mutex.run(volumeId, () => keepAsBase(d, volumeId, box));
      }
      return finishChanges(result.changes);
    } finally {
      await purge(d.cli, opDir);
    }
  });
}

/** Removes the snapshot a live diff kept (call with the volume's mutex held). Idempotent. */
export async function dropDiffBase(cli: BtrfsCli, layout: Layout, volumeId: string): Promise<void> {
  if (await exists(layout.diffBox(volumeId))) await purge(cli, layout.diffBox(volumeId));
}

/**
 * Path of the read-only snapshot the live of `volumeId` is known to equal, or undefined when
 * the live may be dirty or no such snapshot is found. Same rule as sizes(): clean iff
 * gen == max(own cgen, cgen of every snapshot of it); the reference is the newest snapshot of
 * the live, else (never snapshotted) the snapshot the live was made from.
 */
async function cleanReference(d: DiffDeps, volumeId: string): Promise<string | undefined> {
  await d.exec.run('sync', ['-f', d.layout.root]);
  const [list, show] = await Promise.all([d.cli.list(d.layout.root), d.cli.show(d.layout.live(volumeId))]);
  const live = list.find((e) => e.uuid === show.uuid);
  if (!live) return undefined;
  let newest: (typeof list)[number] | undefined;
  for (const e of list) if (e.parentUuid === live.uuid && (!newest || e.cgen > newest.cgen)) newest = e;
  if (live.gen > Math.max(live.cgen, newest?.cgen ?? 0)) return undefined;
  const ref = newest ?? (live.parentUuid ? list.find((e) => e.uuid === live.parentUuid) : undefined);
  const m = ref && /(?:^|\/)(fs\/[A-Za-z0-9_-]+\/(?:commits\/[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+|diff\/base))$/.exec(ref.path);
  if (!ref || !m) return undefined;
  const path = join(d.layout.root, m[1]!);
  if (!(await isSubvolumeRoot(path)) || (await d.cli.show(path)).uuid !== ref.uuid) return undefined;
  return path;
}

/** Replaces `fs/<id>/diff` by the box holding the new snapshot (volume mutex held). */
async function keepAsBase(d: DiffDeps, volumeId: string, box: string): Promise<void> {
  if (!(await isSubvolumeRoot(d.layout.live(volumeId)))) return; // deleted meanwhile
  await dropDiffBase(d.cli, d.layout, volumeId);
  await rename(box, d.layout.diffBox(volumeId));
  await fsyncPath(d.layout.volume(volumeId));
}

/** Runs the send | receive --dump pipeline and parses it line by line. */
async function sendDump(exec: Exec, fromPath: string, toPath: string): Promise<DumpSummary> {
  const sendArgs = ['send', '-q', '--no-data', '-p', fromPath, toPath];
  const dumpArgs = ['receive', '--dump'];
  const send = exec.spawn('btrfs', sendArgs, { stdin: 'ignore' });
  const dump = exec.spawn('btrfs', dumpArgs);
  const errors = { send: '', dump: '' };
  send.stderr?.on('data', (b: Buffer) => {
    if (errors.send.length < 8192) errors.send += b.toString();
  });
  dump.stderr?.on('data', (b: Buffer) => {
    if (errors.dump.length < 8192) errors.dump += b.toString();
  });
  const exited = (child: typeof send) =>
    new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve(code));
    });
  const sendExit = exited(send);
  const dumpExit = exited(dump);
  dump.stdin?.on('error', () => {}); // EPIPE when receive dies first; its exit code tells why
  send.stdout?.pipe(dump.stdin!);
  const parser = new SendDumpParser();
  try {
    for await (const line of createInterface({ input: dump.stdout!, crlfDelay: Number.POSITIVE_INFINITY })) parser.feed(line);
  } catch (e) {
    send.kill('SIGKILL');
    dump.kill('SIGKILL');
    await Promise.allSettled([sendExit, dumpExit]);
    throw e;
  }
  const [sendCode, dumpCode] = await Promise.all([sendExit, dumpExit]);
  if (sendCode !== 0) throw new ExecError('btrfs', sendArgs, sendCode, errors.send);
  if (dumpCode !== 0) throw new ExecError('btrfs', dumpArgs, dumpCode, errors.dump);
  return parser.finish();
}
