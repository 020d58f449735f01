import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createSubvolume, deleteSubvolumes, sh } from './btrfs.ts';
import { atLeast, msSince, ratio, single } from './harness.ts';
import type { Row } from './report.ts';
import { type BenchServer, pool } from './server.ts';
import { NS } from './sized.ts';

/**
 * P7: RPC throughput of one server on this machine's cores (2 on the reference VM): read calls
 * (`Get` of a branch and `List` of the dots, which report fresh sizes and dirty state; `Commits`
 * of a branch, which reads the index only) from `clients` concurrent callers for `seconds`; and
 * commits spread over 10 dots, one caller per dot, against raw read-only snapshots of 10
 * subvolumes on the same pool made by a shell loop (one `btrfs` process per snapshot). Targets:
 * ≥ 200 read RPCs/s; commits/s ≥ 0.5 × raw snapshots/s. The callers run in this process and
 * share the cores with the server, as local clients would.
 */
export const P7_READS_PER_S = 200;
export const P7_COMMIT_FRACTION = 0.5;
const DOTS = 10;

export interface ThroughputOptions {
  readonly clients: number;
  readonly seconds: number;
  /** Commits (and raw snapshots) in total, spread over the 10 dots. */
  readonly commits: number;
}

export async function benchThroughput(s: BenchServer, o: ThroughputOptions): Promise<Row[]> {
  const names = Array.from({ length: DOTS }, (_, i) => `p7-${i}`);
  const fsIds: string[] = [];
  for (const name of names) {
    const path = await s.rpc.call('Procure', { Namespace: NS, Name: name, Subdot: '' });
    await writeFile(join(path, 'f.txt'), name);
    fsIds.push(await s.rpc.call('Lookup', { Namespace: NS, Name: name, Branch: '' }));
  }
  try {
    const note = `${o.clients} concurrent callers, ${o.seconds} s, ${cpus().length} cores`;
    const get = await readRate(o, (i) => s.rpc.call('Get', fsIds[i % DOTS]!));
    const list = await readRate(o, () => s.rpc.call('List', null));
    const commits = await readRate(o, (i) => s.rpc.call('Commits', { Namespace: NS, Name: names[i % DOTS]!, Branch: '' }));
    const perDot = Math.max(1, Math.round(o.commits / DOTS));
    const start = process.hrtime.bigint();
    await pool(names, DOTS, async (name) => {
      for (let i = 0; i < perDot; i++)
        await s.rpc.call('Commit', { Namespace: NS, Name: name, Branch: '', Message: `t${i}`, Metadata: {} });
    });
    const commitsPerS = (perDot * DOTS) / (msSince(start) / 1000);
    const rawPerS = await rawSnapshotRate(s.rawRoot, perDot * DOTS);
    return [
      readRow('Get RPC (one branch)', get, note),
      readRow(`List RPC (${DOTS}+ dots)`, list, note),
      readRow('Commits RPC (one branch)', commits, note),
      {
        id: 'P7',
        what: `Commit RPCs over ${DOTS} dots`,
        unit: '/s',
        figure: single(commitsPerS),
        reference: { what: 'raw snapshots/s (shell loop)', stats: single(rawPerS) },
        ratio: ratio(commitsPerS, rawPerS),
        verdict: atLeast(`≥ ${P7_COMMIT_FRACTION} × ref`, ratio(commitsPerS, rawPerS), P7_COMMIT_FRACTION, '×'),
        note: `${perDot * DOTS} commits, one caller per dot`,
      },
    ];
  } finally {
    await pool(names, 4, (name) => s.rpc.call('Delete', { Namespace: NS, Name: name }));
  }
}

function readRow(what: string, perS: number, note: string): Row {
  return {
    id: 'P7',
    what,
    unit: 'RPC/s',
    figure: single(perS),
    verdict: atLeast(`≥ ${P7_READS_PER_S}/s`, perS, P7_READS_PER_S, '/s'),
    note,
  };
}

/** Calls `call` from `clients` loops for `seconds`; returns completed calls per second. */
async function readRate(o: ThroughputOptions, call: (i: number) => Promise<unknown>): Promise<number> {
  const deadline = Date.now() + o.seconds * 1000;
  let done = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: o.clients }, async (_, c) => {
      for (let i = c; Date.now() < deadline; i += o.clients) {
        await call(i);
        done++;
      }
    }),
  );
  return done / (msSince(start) / 1000);
}

/** Snapshots/s of `count` read-only snapshots of 10 subvolumes made by one `sh` loop. */
async function rawSnapshotRate(rawRoot: string, count: number): Promise<number> {
  const dir = join(rawRoot, 'p7');
  await sh('mkdir', ['-p', join(dir, 'snaps')]);
  for (let i = 0; i < DOTS; i++) await createSubvolume(join(dir, `v${i}`));
  const script =
    'i=0; while [ "$i" -lt "$1" ]; do btrfs subvolume snapshot -r "$2/v$((i % 10))" "$2/snaps/s$i" >/dev/null || exit 1; i=$((i + 1)); done';
  try {
    const start = process.hrtime.bigint();
    await sh('sh', ['-c', script, 'loop', String(count), dir]);
    return count / (msSince(start) / 1000);
  } finally {
    const snaps = Array.from({ length: count }, (_, i) => join(dir, 'snaps', `s${i}`));
    await deleteSubvolumes([...snaps, ...Array.from({ length: DOTS }, (_, i) => join(dir, `v${i}`))]).catch(() => undefined);
    await sh('rm', ['-rf', dir]);
  }
}
