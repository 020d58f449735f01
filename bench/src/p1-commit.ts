import { join } from 'node:path';
import { overwrite, snapshot, syncFs } from './btrfs.ts';
import { alternate, KiB, MiB, timeMs } from './harness.ts';
import { type Row, slackRow } from './report.ts';
import type { BenchServer } from './server.ts';
import { NS, type SizedPair, snapName } from './sized.ts';

/**
 * P1: `Commit` RPC, request sent → reply received, (a) after a 4 KiB write and `sync`, (b) with
 * 100 MiB of unflushed writes; reference: `btrfs subvolume snapshot -r` of the raw twin after
 * the same write. Target: p50 ≤ reference + 25 ms. Dot and raw samples alternate which goes
 * first, so drift on the shared machine hits both alike. In (b) each side writes and snapshots
 * alone, so neither flushes the other's dirty data.
 */
export const P1_SLACK_MS = 25;

export interface CommitOptions {
  readonly samples: number;
  readonly unflushedSamples: number;
}

const commit = (s: BenchServer, p: SizedPair, i: number) =>
  s.rpc.call('Commit', { Namespace: NS, Name: p.dot, Branch: '', Message: `bench ${i}`, Metadata: {} });

export async function benchCommit(s: BenchServer, p: SizedPair, o: CommitOptions): Promise<Row[]> {
  const dot: number[] = [];
  const raw: number[] = [];
  for (let i = 0; i < o.samples; i++) {
    await overwrite(join(p.dotLive, 'small.bin'), 4 * KiB, i);
    await overwrite(join(p.rawLive, 'small.bin'), 4 * KiB, i);
    await syncFs(p.rawLive);
    const timeDot = async () => dot.push(await timeMs(() => commit(s, p, i)));
    const timeRaw = async () => raw.push(await timeMs(() => snapshot(p.rawLive, snapName(p, 'c', i), true)));
    await alternate(i, timeDot, timeRaw);
  }
  const dotBig: number[] = [];
  const rawBig: number[] = [];
  for (let i = 0; i < o.unflushedSamples; i++) {
    await overwrite(join(p.dotLive, 'big.bin'), 100 * MiB, i + 1);
    dotBig.push(await timeMs(() => commit(s, p, 1000 + i)));
    await overwrite(join(p.rawLive, 'big.bin'), 100 * MiB, i + 1);
    rawBig.push(await timeMs(() => snapshot(p.rawLive, snapName(p, 'u', i), true)));
  }
  return [row(p, 'Commit RPC after 4 KiB write + sync', dot, raw), row(p, 'Commit RPC with 100 MiB unflushed', dotBig, rawBig)];
}

function row(p: SizedPair, what: string, dot: number[], raw: number[]): Row {
  return slackRow({
    id: 'P1',
    what,
    size: p.label,
    samples: dot,
    reference: { what: 'snapshot -r', samples: raw },
    slackMs: P1_SLACK_MS,
  });
}
