import { randomBytes } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createSubvolume, deleteSubvolumes, fillFile, sh, syncFs } from './btrfs.ts';
import { formatBytes, MiB } from './harness.ts';
import type { BenchServer } from './server.ts';

/**
 * A dot of `size` bytes for the size-scaling benchmarks (P1, P2, P3): the dot `size-<size>` made
 * with Procure, holding `data.bin` of `size` bytes of real (non-repeating) data, synced.
 */
export interface SizedDot {
  readonly size: number;
  readonly label: string;
  readonly dot: string;
  /** The dot's live data (the Procure path). */
  readonly dotLive: string;
}

/**
 * A sized dot and its raw twin holding the same data: the raw subvolume `<rawRoot>/<name>/live`
 * on the same pool. Snapshots of the raw side go into `<dir>/snaps/` so `drop` finds and
 * deletes them all.
 */
export interface SizedPair extends SizedDot {
  /** The raw twin's directory, its live subvolume and its snapshot directory. */
  readonly rawDir: string;
  readonly rawLive: string;
  readonly rawSnaps: string;
}

export const NS = 'admin';

export async function preparePair(s: BenchServer, size: number): Promise<SizedPair> {
  const seed = randomBytes(MiB);
  const { label, dot, dotLive } = await prepareDot(s, size, seed);
  const rawDir = join(s.rawRoot, dot);
  const rawLive = join(rawDir, 'live');
  const rawSnaps = join(rawDir, 'snaps');
  await mkdir(rawSnaps, { recursive: true });
  await createSubvolume(rawLive);
  await fillFile(join(rawLive, 'data.bin'), size, seed);
  await syncFs(rawLive);
  return { size, label, dot, dotLive, rawDir, rawLive, rawSnaps };
}

/** A sized dot alone (a second server's side of a comparison against one raw twin). */
export async function prepareDot(s: BenchServer, size: number, seed: Buffer = randomBytes(MiB)): Promise<SizedDot> {
  const label = formatBytes(size);
  const dot = `size-${label.replace(' ', '')}`;
  const dotLive = await s.rpc.call('Procure', { Namespace: NS, Name: dot, Subdot: '' });
  await fillFile(join(dotLive, 'data.bin'), size, seed);
  await syncFs(dotLive);
  return { size, label, dot, dotLive };
}

/** Deletes the dot (btrfs frees the space asynchronously). */
export async function dropDot(s: BenchServer, d: SizedDot): Promise<void> {
  await s.rpc.call('Delete', { Namespace: NS, Name: d.dot });
}

/** Deletes the dot and every raw subvolume of the pair (btrfs frees the space asynchronously). */
export async function dropPair(s: BenchServer, p: SizedPair): Promise<void> {
  await dropDot(s, p);
  const snaps = (await readdir(p.rawSnaps).catch(() => [])).map((n) => join(p.rawSnaps, n));
  await deleteSubvolumes([...snaps, p.rawLive]);
  await sh('rm', ['-rf', p.rawDir]);
}

/** A fresh name for the raw side's next snapshot. */
export function snapName(p: SizedPair, tag: string, i: number): string {
  return join(p.rawSnaps, `${tag}${i}`);
}
