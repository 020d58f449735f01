import { randomBytes, randomInt } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from '@dotmesh/testkit';
import { createSubvolume, deleteSubvolumes, fillFile, removeTree, sh, snapshot, writeAt } from './btrfs.ts';
import { alternate, atMost, formatBytes, KiB, MiB, ratio, summarize } from './harness.ts';
import { type BenchPair, dropReceived, NS, rawSend, settle, timedPush } from './pair-hosts.ts';
import { type Row, slackRow } from './report.ts';

/**
 * P4: incremental push. A dot of `size` (1 GiB and 10 GiB in full mode) on host a, pushed to
 * host b once in full beforehand; then, per sample, 1 MiB of it is overwritten (one 1 MiB
 * extent of fresh random data at a random 1 MiB-aligned offset), committed, and pushed; timed
 * from the `Transfer` RPC until b's `Commits` lists the new commit (polled from b's namespace
 * every `pollMs`, so the figure may read up to one interval plus one call late). Wire bytes: GetTransfer.Sent (the framed stream), and the bytes through a's
 * veth (`ip -s link`, both ways, everything on the wire). Done over plain HTTP and over HTTPS
 * with b's certificate pinned.
 *
 * Reference, in the same run between the same namespaces: a raw twin of the dot (a subvolume
 * on a's pool holding the same file, a reflink copy, with the same overwrites) snapshotted
 * read-only after each overwrite, and `btrfs send -p <previous> <snapshot> | curl -T-` into the
 * raw sink in b's namespace, which pipes the body into `btrfs receive` on b's pool. Dot and raw
 * samples alternate which goes first.
 *
 * Targets: wire bytes ≤ 1.05 × 1 MiB + 64 KiB; time p50 ≤ reference p50 + 300 ms; for both sizes.
 */
export const P4_SLACK_MS = 300;
export const P4_OVERWRITE = MiB;
export const P4_WIRE_LIMIT = 1.05 * P4_OVERWRITE + 64 * KiB;

export interface PushOptions {
  readonly samples: number;
  readonly pollMs: number;
}

const TIMEOUT_MS = 60 * 60_000;

export async function benchIncrementalPush(cleanup: Cleanup, p: BenchPair, size: number, o: PushOptions): Promise<Row[]> {
  const label = formatBytes(size);
  const dot = `p4-${label.replace(' ', '')}`;
  const commit = (message: string) =>
    p.a.server.admin.call('Commit', { Namespace: NS, Name: dot, Branch: '', Message: message, Metadata: {} });
  const rawDir = join(p.a.rawRoot, dot);
  const rawLive = join(rawDir, 'live');
  const snaps = join(rawDir, 'snaps');
  const snapNames: string[] = [];
  const rows: Row[] = [];
  try {
    const live = await p.a.server.admin.call('Procure', { Namespace: NS, Name: dot, Subdot: '' });
    const file = join(live, 'data.bin');
    const rawFile = join(rawLive, 'data.bin');
    const t0 = Date.now();
    await fillFile(file, size, randomBytes(MiB));
    const base = await commit('base');
    await mkdir(snaps, { recursive: true });
    await createSubvolume(rawLive);
    await sh('cp', ['--reflink=auto', file, rawFile]);
    let parent = join(snaps, `${dot}-0`);
    await snapshot(rawLive, parent, true);
    snapNames.push(parent);
    // the full push beforehand, both ways of sending (figures kept as a note)
    const full = await timedPush(cleanup, p, { dot, commit: base, https: false, pollMs: 50, timeoutMs: TIMEOUT_MS });
    const fullRaw = await rawSend(p, { snapshot: parent, timeoutMs: TIMEOUT_MS });
    await settle(p.b);
    const mibps = (ms: number) => Math.round(size / MiB / (ms / 1000));
    const fullNote =
      `full push beforehand: dm ${Math.round(full.ms)} ms (${mibps(full.ms)} MiB/s), raw ${Math.round(fullRaw.ms)} ms ` +
      `(${mibps(fullRaw.ms)} MiB/s); fill ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    console.error(`bench: P4 ${label}: ${fullNote}`);

    const blocks = Math.max(1, Math.floor(size / P4_OVERWRITE));
    let n = 0;
    for (const https of [false, true]) {
      const proto = https ? 'HTTPS, pinned' : 'HTTP';
      const dm: number[] = [];
      const raw: number[] = [];
      const sent: number[] = [];
      const rawBytes: number[] = [];
      const veth: number[] = [];
      const rawVeth: number[] = [];
      const rpc: number[] = [];
      const run: number[] = [];
      for (let i = 0; i < o.samples; i++) {
        n++;
        const data = randomBytes(P4_OVERWRITE);
        const offset = randomInt(blocks) * P4_OVERWRITE;
        await writeAt(file, data, offset);
        await writeAt(rawFile, data, offset);
        const id = await commit(`overwrite ${n}`);
        const snap = join(snaps, `${dot}-${n}`);
        await snapshot(rawLive, snap, true);
        snapNames.push(snap);
        const prev = parent;
        parent = snap;
        await alternate(
          i,
          async () => {
            const r = await timedPush(cleanup, p, { dot, commit: id, https, pollMs: o.pollMs, timeoutMs: TIMEOUT_MS });
            dm.push(r.ms);
            rpc.push(r.rpcMs);
            run.push(r.final.NanosecondsElapsed / 1e6);
            sent.push(r.sent);
            veth.push(r.veth);
          },
          async () => {
            const r = await rawSend(p, { snapshot: snap, parent: prev, timeoutMs: TIMEOUT_MS });
            raw.push(r.ms);
            rawBytes.push(r.bytes);
            rawVeth.push(r.veth);
          },
        );
      }
      rows.push({
        ...slackRow({
          id: 'P4',
          what: `incremental push of a 1 MiB overwrite (${proto}), Transfer → listed by the receiver`,
          size: label,
          samples: dm,
          reference: { what: 'send -p | curl | receive', samples: raw },
          slackMs: P4_SLACK_MS,
        }),
        note:
          `of which the Transfer RPC (preflight) p50 ${Math.round(summarize(rpc).p50)} ms, the transfer's own run ` +
          `(GetTransfer elapsed) p50 ${Math.round(summarize(run).p50)} ms${https ? '' : `; ${fullNote}`}`,
      });
      const sentStats = summarize(sent);
      const rawStats = summarize(rawBytes);
      rows.push({
        id: 'P4',
        what: `wire bytes of that push (${proto}): GetTransfer.Sent, framed stream`,
        size: label,
        unit: 'KiB',
        figure: summarize(sent.map((x) => x / KiB)),
        reference: { what: 'send -p stream bytes', stats: summarize(rawBytes.map((x) => x / KiB)) },
        ratio: ratio(sentStats.p50, rawStats.p50),
        verdict: atMost(`≤ 1.05 × 1 MiB + 64 KiB`, sentStats.p50 / KiB, P4_WIRE_LIMIT / KiB, 'KiB'),
      });
      const vethStats = summarize(veth);
      const rawVethStats = summarize(rawVeth);
      rows.push({
        id: 'P4',
        what: `bytes on a's veth during that push (${proto}), both ways, TCP/IP included`,
        size: label,
        unit: 'KiB',
        figure: summarize(veth.map((x) => x / KiB)),
        reference: { what: 'send -p | curl on the veth', stats: summarize(rawVeth.map((x) => x / KiB)) },
        ratio: ratio(vethStats.p50, rawVethStats.p50),
        note: `for comparison: the target's bound is ${Math.round(P4_WIRE_LIMIT / KiB)} KiB of stream`,
      });
    }
    return rows;
  } finally {
    await p.a.server.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await p.b.server.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await deleteSubvolumes(snapNames);
    await deleteSubvolumes([rawLive]).catch(() => undefined);
    await removeTree(rawDir);
    await dropReceived(p, `${dot}-`);
    await settle(p.a);
    await settle(p.b);
  }
}
