import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from '@dotmesh/testkit';
import { createSubvolume, deleteSubvolumes, fillFile, removeTree, sh, snapshot } from './btrfs.ts';
import { alternate, atLeast, formatBytes, MiB, ratio, rotate, summarize } from './harness.ts';
import {
  type BenchPair,
  dmTlsChoice,
  dropReceived,
  NS,
  rawSend,
  settle,
  startRsyncDaemon,
  timedPush,
  timedRunInA,
} from './pair-hosts.ts';
import type { Row } from './report.ts';
import { pool } from './server.ts';

/**
 * P5: full clones, a → b into an empty b (the dot is deleted on b between samples; b's pool is
 * flushed and its deleted subvolumes cleaned before each sample, untimed).
 *
 * (a) A dot of `bigSize` (2 GiB in full mode) of incompressible data: `Transfer` push, from
 * the RPC until b's `Commits` lists the commit, as throughput (logical bytes / time), over plain
 * HTTP and over HTTPS pinned. References: the raw twin's read-only snapshot (a reflink copy of
 * the same file) through `btrfs send | curl -T- | receive` between the same namespaces — for
 * HTTPS the same pipe through TLS: curl (OpenSSL) with exactly the protocol and cipher suite a
 * server's transfer negotiates with b (pair-agent tls-cipher), to a sink on b terminating TLS in
 * Node with b's own certificate, as b's server does (raw-sink.ts); the sink reports the cipher
 * it saw. The TLS pipe's own throughput is a row of its own, against the plain pipe. Target:
 * ≥ 0.8 × the matching raw pipe.
 *
 * (b) A dot of `files` small files (100k in full mode, 512 B – 8 KiB each, 1,000 per directory):
 * the same push (plain HTTP) against the raw pipe on a copy of the same files (target: ≥ 0.8 ×
 * its files/s), reported beside `rsync -a <dot's files>/ rsync://b/...` to an rsync daemon in
 * b's namespace writing onto b's pool (plain TCP, as the dm side), and the raw pipe of the same
 * files split into two subvolumes sent at once (what parallel streams would give).
 */
export const P5_RAW_RATIO = 0.8;

export interface CloneOptions {
  readonly bigSize: number;
  readonly bigSamples: number;
  readonly files: number;
  readonly filesSamples: number;
  readonly pollMs: number;
}

const TIMEOUT_MS = 60 * 60_000;

export async function benchClone(cleanup: Cleanup, p: BenchPair, o: CloneOptions): Promise<Row[]> {
  return [...(await bigClone(cleanup, p, o)), ...(await manyFiles(cleanup, p, o))];
}

async function emptyB(p: BenchPair, dot: string): Promise<void> {
  await p.b.server.admin.call('Delete', { Namespace: NS, Name: dot });
  await settle(p.b);
}

async function bigClone(cleanup: Cleanup, p: BenchPair, o: CloneOptions): Promise<Row[]> {
  const label = formatBytes(o.bigSize);
  const dot = `p5-${label.replace(' ', '')}`;
  const rawDir = join(p.a.rawRoot, dot);
  const rawLive = join(rawDir, 'live');
  const snap = join(rawDir, `${dot}-snap`);
  try {
    const live = await p.a.server.admin.call('Procure', { Namespace: NS, Name: dot, Subdot: '' });
    const file = join(live, 'data.bin');
    await fillFile(file, o.bigSize, randomBytes(MiB));
    const commit = await p.a.server.admin.call('Commit', { Namespace: NS, Name: dot, Branch: '', Message: 'all', Metadata: {} });
    await mkdir(rawDir, { recursive: true });
    await createSubvolume(rawLive);
    await sh('cp', ['--reflink=auto', file, join(rawLive, 'data.bin')]);
    await snapshot(rawLive, snap, true);
    await settle(p.a);
    const mibps = (ms: number) => o.bigSize / MiB / (ms / 1000);
    const tls = await dmTlsChoice(p);
    const tlsName = `${tls.protocol} ${tls.standardName}`;
    const rows: Row[] = [];
    const rawBy = new Map<boolean, number[]>();
    for (const https of [false, true]) {
      const dm: number[] = [];
      const sent: number[] = [];
      const raw: number[] = [];
      const rawBytes: number[] = [];
      for (let i = 0; i < o.bigSamples; i++) {
        await alternate(
          i,
          async () => {
            const r = await timedPush(cleanup, p, { dot, commit, https, pollMs: o.pollMs, timeoutMs: TIMEOUT_MS });
            dm.push(mibps(r.ms));
            sent.push(r.sent);
            await emptyB(p, dot);
          },
          async () => {
            const r = await rawSend(p, { snapshot: snap, timeoutMs: TIMEOUT_MS, ...(https ? { tls } : {}) });
            raw.push(mibps(r.ms));
            rawBytes.push(r.bytes);
            await dropReceived(p, `${dot}-`);
            await settle(p.b);
          },
        );
      }
      rawBy.set(https, raw);
      const fig = summarize(dm);
      const ref = summarize(raw);
      rows.push({
        id: 'P5',
        what: `full clone (push to an empty peer, ${https ? 'HTTPS, pinned' : 'HTTP'}), Transfer → listed by the receiver`,
        size: label,
        unit: 'MiB/s',
        figure: fig,
        reference: { what: https ? `send | curl (${tlsName}) | receive` : 'send | curl | receive', stats: ref },
        ratio: ratio(fig.p50, ref.p50),
        verdict: atLeast(`p50 ≥ ${P5_RAW_RATIO} × raw`, fig.p50, P5_RAW_RATIO * ref.p50, 'MiB/s'),
        note: `stream ${Math.round(summarize(sent).p50 / MiB)} MiB framed vs ${Math.round(summarize(rawBytes).p50 / MiB)} MiB raw`,
      });
    }
    const tlsRaw = summarize(rawBy.get(true) ?? []);
    const plainRaw = summarize(rawBy.get(false) ?? []);
    rows.push({
      id: 'P5',
      what: `the HTTPS reference itself: send | curl | receive through TLS (${tlsName}; curl → Node TLS sink)`,
      size: label,
      unit: 'MiB/s',
      figure: tlsRaw,
      reference: { what: 'send | curl | receive (plain HTTP)', stats: plainRaw },
      ratio: ratio(tlsRaw.p50, plainRaw.p50),
      note: 'no target: what TLS itself costs the raw pipe',
    });
    return rows;
  } finally {
    await p.a.server.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await p.b.server.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await deleteSubvolumes([snap, rawLive]).catch(() => undefined);
    await removeTree(rawDir);
    await dropReceived(p, `${dot}-`);
    await settle(p.a);
    await settle(p.b);
  }
}

/** `count` files of 512 B – 8 KiB of random bytes, 1,000 per directory; returns their total size. */
async function writeSmallFiles(root: string, count: number): Promise<number> {
  const pool8k = randomBytes(64 * 1024);
  const dirs = Math.ceil(count / 1000);
  for (let d = 0; d < dirs; d++) await mkdir(join(root, `d${String(d).padStart(3, '0')}`), { recursive: true });
  let total = 0;
  await pool(
    Array.from({ length: count }, (_, i) => i),
    16,
    async (i) => {
      const len = 512 + ((i * 7919) % (8 * 1024 - 512));
      const off = (i * 4099) % (pool8k.length - len);
      const data = Buffer.from(pool8k.subarray(off, off + len));
      data.writeUInt32LE(i, 0); // no two files equal
      total += len;
      await writeFile(join(root, `d${String(Math.floor(i / 1000)).padStart(3, '0')}`, `f${i}.bin`), data);
    },
  );
  return total;
}

/** Directory names of writeSmallFiles' tree, split into two halves. */
function halves(count: number): [string[], string[]] {
  const dirs = Array.from({ length: Math.ceil(count / 1000) }, (_, d) => `d${String(d).padStart(3, '0')}`);
  const cut = Math.ceil(dirs.length / 2);
  return [dirs.slice(0, cut), dirs.slice(cut)];
}

/**
 * The raw pipe of several snapshots at once, each its own `send | curl | receive` (the sink runs
 * one `btrfs receive` per request), timed from the first start to the last exit.
 */
async function rawParallel(p: BenchPair, snapshots: readonly string[]): Promise<number> {
  const script =
    'url=$1; shift; for s in "$@"; do (btrfs send -q "$s" | curl -sS --fail-with-body -T- "$url") & done; ' +
    'rc=0; for s in "$@"; do wait -n || rc=1; done; exit $rc';
  const r = await timedRunInA(p, ['bash', '-c', script, 'bash', p.sinkUrl, ...snapshots], TIMEOUT_MS);
  return r.ms;
}

async function manyFiles(cleanup: Cleanup, p: BenchPair, o: CloneOptions): Promise<Row[]> {
  const dot = `p5-files-${o.files}`;
  const rsync = await startRsyncDaemon(cleanup, p);
  const rawDir = join(p.a.rawRoot, dot);
  const rawLive = join(rawDir, 'live');
  const snap = join(rawDir, `${dot}-snap`);
  const halfLives = [join(rawDir, 'half0'), join(rawDir, 'half1')];
  const halfSnaps = [join(rawDir, `${dot}-half0`), join(rawDir, `${dot}-half1`)];
  try {
    const live = await p.a.server.admin.call('Procure', { Namespace: NS, Name: dot, Subdot: '' });
    const t0 = Date.now();
    const bytes = await writeSmallFiles(live, o.files);
    const commit = await p.a.server.admin.call('Commit', {
      Namespace: NS,
      Name: dot,
      Branch: '',
      Message: 'files',
      Metadata: {},
    });
    const fill = (Date.now() - t0) / 1000;
    await mkdir(rawDir, { recursive: true });
    await createSubvolume(rawLive);
    await sh('cp', ['-a', '--reflink=auto', `${live}/.`, `${rawLive}/`]);
    await snapshot(rawLive, snap, true);
    for (const [i, names] of halves(o.files).entries()) {
      await createSubvolume(halfLives[i]!);
      if (names.length > 0) await sh('cp', ['-a', '--reflink=auto', ...names.map((n) => join(live, n)), `${halfLives[i]}/`]);
      await snapshot(halfLives[i]!, halfSnaps[i]!, true);
    }
    await settle(p.a);
    const dm: number[] = [];
    const ref: number[] = [];
    const raw: number[] = [];
    const parallel: number[] = [];
    const perSec = (ms: number) => o.files / (ms / 1000);
    const rawPipe = async () => {
      const r = await rawSend(p, { snapshot: snap, timeoutMs: TIMEOUT_MS });
      raw.push(perSec(r.ms));
      await dropReceived(p, `${dot}-`);
      await settle(p.b);
    };
    const rawHalves = async () => {
      parallel.push(perSec(await rawParallel(p, halfSnaps)));
      await dropReceived(p, `${dot}-`);
      await settle(p.b);
    };
    for (let i = 0; i < o.filesSamples; i++) {
      await rotate(i, [
        async () => {
          const r = await timedPush(cleanup, p, { dot, commit, https: false, pollMs: o.pollMs, timeoutMs: TIMEOUT_MS });
          dm.push(perSec(r.ms));
          await emptyB(p, dot);
        },
        rawPipe,
        async () => {
          const dest = `run${i}`;
          const r = await timedRunInA(p, ['rsync', '-a', `${live}/`, `${rsync.url}/${dest}/`], TIMEOUT_MS);
          ref.push(perSec(r.ms));
          await removeTree(join(rsync.dir, dest));
          await settle(p.b);
        },
        rawHalves,
      ]);
    }
    const fig = summarize(dm);
    const rsyncStats = summarize(ref);
    const rawStats = summarize(raw);
    const parallelStats = summarize(parallel);
    const ms = (perSecond: number) => Math.round((o.files / perSecond) * 1000);
    const size = `${o.files} files, ${formatBytes(Math.round(bytes / MiB) * MiB)}`;
    const rsyncRef = { what: 'rsync -a to an rsync daemon', stats: rsyncStats };
    return [
      {
        id: 'P5',
        what: `full clone of ${o.files} small files (push to an empty peer, HTTP), Transfer → listed by the receiver`,
        size,
        unit: 'files/s',
        figure: fig,
        reference: { what: 'send | curl | receive of the same files', stats: rawStats },
        ratio: ratio(fig.p50, rawStats.p50),
        verdict: atLeast(`p50 ≥ ${P5_RAW_RATIO} × raw`, fig.p50, P5_RAW_RATIO * rawStats.p50, 'files/s'),
        note: `dm ${ms(fig.p50)} ms, raw ${ms(rawStats.p50)} ms; writing the files took ${fill.toFixed(1)} s`,
      },
      {
        id: 'P5',
        what: `the same full clone of ${o.files} small files against rsync (no target)`,
        size,
        unit: 'files/s',
        figure: fig,
        reference: rsyncRef,
        ratio: ratio(fig.p50, rsyncStats.p50),
        note: `dm ${ms(fig.p50)} ms, rsync ${ms(rsyncStats.p50)} ms`,
      },
      {
        id: 'P5',
        what: `raw send | curl | receive of the same ${o.files} files (no target: what the pipe under dm allows)`,
        size: `${o.files} files`,
        unit: 'files/s',
        figure: rawStats,
        reference: rsyncRef,
        ratio: ratio(rawStats.p50, rsyncStats.p50),
        note: `raw ${ms(rawStats.p50)} ms; dm / raw = ${(fig.p50 / rawStats.p50).toFixed(2)}`,
      },
      {
        id: 'P5',
        what: `the same ${o.files} files as two subvolumes, two raw pipes at once (no target: what parallel streams would give)`,
        size: `${o.files} files`,
        unit: 'files/s',
        figure: parallelStats,
        reference: rsyncRef,
        ratio: ratio(parallelStats.p50, rsyncStats.p50),
        note: `two pipes ${ms(parallelStats.p50)} ms vs one ${ms(rawStats.p50)} ms`,
      },
    ];
  } finally {
    await p.a.server.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await p.b.server.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await removeTree(rsync.dir);
    await deleteSubvolumes([snap, rawLive, ...halfSnaps, ...halfLives]).catch(() => undefined);
    await removeTree(rawDir);
    await dropReceived(p, `${dot}-`);
    await settle(p.a);
    await settle(p.b);
  }
}
