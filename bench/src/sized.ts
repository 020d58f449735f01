import { randomBytes } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createSubvolume, deleteSubvolumes, fillFile, sh, syncFs } from './btrfs.ts';
import { formatBytes, MiB } from './harness.ts';
import type { BenchServer } from './server.ts';

/**
 * A dot and its raw twin holding the same data, for the size-scaling benchmarks (P1, P2, P3):
 * the dot `<prefix>-<size>` made with Procure, and the raw subvolume `<rawRoot>/<name>/live` on
 * the same pool; both get `data.bin` of `size` bytes of real (non-repeating) data, synced.
 * Snapshots of the raw side go into `<dir>/snaps/` so `drop` finds and deletes them all.
 */
export interface SizedPair {
  readonly size: number;
  readonly label: string;
  readonly dot: string;
  /** The dot's live data (the Procure path). */
  readonly dotLive: string;
  /** The raw twin's directory, its live subvolume and its snapshot directory. */
  readonly rawDir: string;
  readonly rawLive: string;
  readonly rawSnaps: string;
}

export const NS = 'admin';

export async function preparePair(s: BenchServer, size: number): Promise<SizedPair> {
  const label = formatBytes(size);
  const dot = `size-${label.replace(' ', '')}`;
  const dotLive = await s.rpc.call('Procure', { Namespace: NS, Name: dot, Subdot: '' });
  const rawDir = join(s.rawRoot, dot);
  const rawLive = join(rawDir, 'live');
  const rawSnaps = join(rawDir, 'snaps');
  await mkdir(rawSnaps, { recursive: true });
  await createSubvolume(rawLive);
  const seed = randomBytes(MiB);
  await fillFile(join(dotLive, 'data.bin'), size, seed);
  await fillFile(join(rawLive, 'data.bin'), size, seed);
  await syncFs(rawLive);
  return { size, label, dot, dotLive, rawDir, rawLive, rawSnaps };
}

/** Deletes the dot and every raw subvolume of the pair (btrfs frees the space asynchronously). */
export async function dropPair(s: BenchServer, p: SizedPair): Promise<void> {
  await s.rpc.call('Delete', { Namespace: NS, Name: p.dot });
  const snaps = (await readdir(p.rawSnaps).catch(() => [])).map((n) => join(p.rawSnaps, n));
  await deleteSubvolumes([...snaps, p.rawLive]);
  await sh('rm', ['-rf', p.rawDir]);
}

/** A fresh name for the raw side's next snapshot. */
export function snapName(p: SizedPair, tag: string, i: number): string {
  return join(p.rawSnaps, `${tag}${i}`);
}
