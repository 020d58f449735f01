import { join } from 'node:path';
import type { Cleanup } from '@dotmesh/testkit';
import { createSubvolume, makeRawPool, sh } from './btrfs.ts';
import { atMost, ratio, single, summarize, timeMs } from './harness.ts';
import { runNode } from './p10-cli.ts';
import type { Row } from './report.ts';
import { type BenchServer, pool, rssMiB } from './server.ts';
import { NS } from './sized.ts';

/**
 * P6: `dots` dots on one node (1,000 in full mode): `List` RPC latency, `dm list` end to end
 * (the built dm), and the server's resident memory from /proc/<pid>/status; reference:
 * `btrfs subvolume list` of as many raw subvolumes on a pool of their own (the server's pool
 * also holds commits and other benchmarks' leftovers, which would inflate a listing of it).
 * Targets: List ≤ 300 ms; RSS ≤ 300 MiB. The dots are deleted afterwards.
 */
export const P6_LIST_MS = 300;
export const P6_RSS_MIB = 300;

export interface ManyDotsOptions {
  readonly dots: number;
  readonly samples: number;
  readonly dmBundle: string | undefined;
}

export async function benchManyDots(cleanup: Cleanup, s: BenchServer, o: ManyDotsOptions): Promise<Row[]> {
  const names = Array.from({ length: o.dots }, (_, i) => `many-${String(i).padStart(4, '0')}`);
  const createMs = await timeMs(() => pool(names, 4, (name) => s.rpc.call('Create', { Namespace: NS, Name: name })));
  try {
    const listed = Object.keys((await s.rpc.call('List', null)).admin ?? {}).length;
    if (listed < o.dots) throw new Error(`List shows ${listed} dots in admin, expected at least ${o.dots}`);
    const list: number[] = [];
    for (let i = 0; i < o.samples; i++) list.push(await timeMs(() => s.rpc.call('List', null)));
    const dmList: number[] = [];
    if (o.dmBundle) for (let i = 0; i < o.samples; i++) dmList.push(await timeMs(() => runNode([o.dmBundle!, 'list'], s.dmHome)));
    const mem = await rssMiB(s.proc.pid);
    const rawList = await rawListing(cleanup, o.dots, o.samples);
    const ref = { what: `btrfs subvolume list (${o.dots} subvolumes)`, stats: summarize(rawList) };
    const listStats = summarize(list);
    const rows: Row[] = [
      {
        id: 'P6',
        what: `List RPC, ${o.dots} dots`,
        unit: 'ms',
        figure: listStats,
        reference: ref,
        ratio: ratio(listStats.p50, ref.stats.p50),
        verdict: atMost(`p50 ≤ ${P6_LIST_MS} ms`, listStats.p50, P6_LIST_MS, 'ms'),
      },
    ];
    if (o.dmBundle) {
      const dm = summarize(dmList);
      rows.push({
        id: 'P6',
        what: `dm list end to end, ${o.dots} dots`,
        unit: 'ms',
        figure: dm,
        reference: ref,
        ratio: ratio(dm.p50, ref.stats.p50),
        note: 'no separate target (P10 covers dm start-up)',
      });
    }
    rows.push({
      id: 'P6',
      what: `server RSS with ${o.dots} dots`,
      unit: 'MiB',
      figure: single(mem.rss),
      verdict: atMost(`≤ ${P6_RSS_MIB} MiB`, mem.rss, P6_RSS_MIB, 'MiB'),
      note: `peak (VmHWM) ${Math.round(mem.peak)} MiB; creating the dots took ${Math.round(createMs)} ms`,
    });
    return rows;
  } finally {
    await pool(names, 4, (name) => s.rpc.call('Delete', { Namespace: NS, Name: name }));
  }
}

/** Times `btrfs subvolume list` of `count` fresh subvolumes on a pool of their own. */
async function rawListing(cleanup: Cleanup, count: number, samples: number): Promise<number[]> {
  const raw = await makeRawPool(cleanup, '2G');
  await pool(
    Array.from({ length: count }, (_, i) => i),
    4,
    (i) => createSubvolume(join(raw.mnt, `v${i}`)),
  );
  const out: number[] = [];
  for (let i = 0; i < samples; i++) out.push(await timeMs(() => sh('btrfs', ['subvolume', 'list', raw.mnt])));
  return out;
}
