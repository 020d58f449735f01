import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSubvolume, deleteSubvolumes, fillFile, removeTree, sh, writeAt } from './btrfs.ts';
import {
  type AgentCall,
  type BenchCluster,
  type BenchNode,
  callsFrom,
  countersSince,
  etcdCounters,
  rawSnapshotAndSend,
} from './cluster-bench.ts';
import { alternate, formatBytes, KiB, MiB, single } from './harness.ts';
import { type Row, slackRow } from './report.ts';
import { loggedAs, phasesNote } from './server.ts';

/**
 * P13 on a cluster of nodes sharing one etcd (cluster-bench.ts), and the store's cost per dot.
 *
 * Forwarding: the same call made on a branch's master and on another node, which passes it on to
 * the master over the node-to-node mutual-TLS endpoint (`Commits`, a read; `Commit`, a write);
 * each side's calls come from a client in its own namespace on one connection, in batches that
 * alternate which side goes first. Target: forwarded p50 ≤ master p50 + 10 ms.
 *
 * Handoff: a dot of `size` mastered on node 0 is moved to node 1 once in full beforehand (its
 * figure is a note); then, per sample, 1 MiB of fresh data is written (uncommitted) at a random
 * 1 MiB-aligned offset of its file on the current master and `Procure` is called on the other
 * node: timed from the request to the reply, which comes once the branch is mounted there (the
 * old master committed the change as a migration commit, the new one received it, the master
 * key moved). Each sample checks the 1 MiB is there on the new master. Reference in the same
 * run: a raw twin of the dot (on node 0's pool, sent to node 1 in full beforehand) gets the same
 * write, then `btrfs subvolume snapshot -r` + `btrfs send -p <previous> | curl -T-` into node
 * 1's raw sink (`btrfs receive`); handoffs go both ways, the reference always from node 0 to 1.
 * Target: handoff p50 ≤ reference p50 + 500 ms.
 *
 * Store cost: `dots` dots created round-robin on every node, then one commit each on its master
 * (commits of every node in parallel); etcd's counters (cluster-bench.ts etcdCounters) around
 * the commits, less the background (leases, advertisers) measured over an idle window
 * beforehand and scaled to the commits' duration; the keyspace's bytes (keys + values, etcdctl) before the dots, after
 * the creates and after the commits. For information (targets.md has no figure for it).
 */
export const P13_HANDOFF_SLACK_MS = 500;
export const P13_FORWARD_SLACK_MS = 10;
const NS = 'admin';
const TIMEOUT_MS = 60 * 60_000;

export interface ForwardingOptions {
  readonly rounds: number;
  readonly callsPerRound: number;
}

export async function benchForwarding(c: BenchCluster, o: ForwardingOptions): Promise<Row[]> {
  const [master, other] = c.nodes as [BenchNode, BenchNode];
  const dot = 'p13-forward';
  await master.node.admin.call('Create', { Namespace: NS, Name: dot });
  try {
    for (let i = 0; i < 3; i++)
      await master.node.admin.call('Commit', { Namespace: NS, Name: dot, Branch: '', Message: `c${i}`, Metadata: {} });
    await expectMaster(c, dot, master);
    const rows: Row[] = [];
    const cases: { what: string; call: (i: number) => AgentCall }[] = [
      { what: '`Commits` (a read)', call: () => ({ method: 'Commits', params: { Namespace: NS, Name: dot, Branch: '' } }) },
      {
        what: '`Commit` (a write)',
        call: (i) => ({ method: 'Commit', params: { Namespace: NS, Name: dot, Branch: '', Message: `f${i}`, Metadata: {} } }),
      },
    ];
    for (const k of cases) {
      const onMaster: number[] = [];
      const forwarded: number[] = [];
      let n = 0;
      const batch = () => Array.from({ length: o.callsPerRound }, () => k.call(n++));
      for (let round = 0; round < o.rounds; round++) {
        await alternate(
          round,
          async () => onMaster.push(...(await callsFrom(master, master, batch(), { warmup: 2 })).map((r) => r.ms)),
          async () => forwarded.push(...(await callsFrom(other, other, batch(), { warmup: 2 })).map((r) => r.ms)),
        );
      }
      rows.push(
        slackRow({
          id: 'P13',
          what: `${k.what} through a node that passes it on to the branch's master`,
          size: '',
          samples: forwarded,
          reference: { what: 'the same call on the master', samples: onMaster },
          slackMs: P13_FORWARD_SLACK_MS,
        }),
      );
    }
    return rows;
  } finally {
    await master.node.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
  }
}

/** Fails unless every node's view names `master` as the master node of `dot`'s master branch. */
async function expectMaster(c: BenchCluster, dot: string, master: BenchNode): Promise<void> {
  const fsId = await master.node.admin.call('Lookup', { Namespace: NS, Name: dot, Branch: '' });
  for (const n of c.nodes) {
    const state = (await n.node.admin.call('DumpInternalState', `masters.${fsId}`)) as Record<string, string>;
    const seen = state[`masters.${fsId}`];
    if (seen !== master.node.nodeId)
      throw new Error(`node ${n.node.index} sees ${seen} as the master of ${dot}, expected node ${master.node.index}`);
  }
}

export interface HandoffOptions {
  readonly samples: number;
}

async function readAt(file: string, length: number, offset: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

const procure = (dot: string): AgentCall => ({ method: 'Procure', params: { Namespace: NS, Name: dot, Subdot: '' } });

/**
 * Where the old master's time went in the timed handoffs (not the first, whole one): the
 * medians of its "handed a branch to another node" phases (inUse, commit, send, move) and of
 * the transfer inside (size, stream, and the receiver's commit).
 */
async function handoffSplit(n0: BenchNode, n1: BenchNode): Promise<string> {
  const logs = await Promise.all([n0, n1].map(async (n) => (await n.node.log()).split('\n')));
  const timed = (msg: string) => logs.flatMap((lines, i) => loggedAs(lines, msg).slice(i === 0 ? 1 : 0));
  return `old master p50 ms: ${phasesNote(timed('handed a branch to another node'))}; its transfer: ${phasesNote(timed('transfer timings'))}`;
}

export async function benchHandoff(c: BenchCluster, size: number, o: HandoffOptions): Promise<Row[]> {
  const [n0, n1] = c.nodes as [BenchNode, BenchNode];
  const label = formatBytes(size);
  const dot = `p13-handoff-${label.replace(' ', '')}`;
  const rawDir = join(n0.rawRoot, dot);
  const rawLive = join(rawDir, 'live');
  const snaps: string[] = [];
  try {
    const live0 = await n0.node.admin.call('Procure', { Namespace: NS, Name: dot, Subdot: '' });
    const t0 = Date.now();
    await fillFile(join(live0, 'data.bin'), size, randomBytes(MiB));
    await n0.node.admin.call('Commit', { Namespace: NS, Name: dot, Branch: '', Message: 'base', Metadata: {} });
    await mkdir(rawDir, { recursive: true });
    await createSubvolume(rawLive);
    await sh('cp', ['--reflink=auto', join(live0, 'data.bin'), join(rawLive, 'data.bin')]);
    const fill = (Date.now() - t0) / 1000;
    // Beforehand, in full: the raw twin to node 1, and the dot's first handoff to node 1.
    snaps.push(join(rawDir, 's0'));
    const fullRaw = await rawSnapshotAndSend(n0, n1, { live: rawLive, snapshot: snaps[0]!, timeoutMs: TIMEOUT_MS });
    const [first] = await callsFrom(n1, n1, [procure(dot)], { results: true });
    const livePath = new Map<BenchNode, string>([
      [n0, live0],
      [n1, String(first!.result)],
    ]);
    const mibps = (ms: number) => Math.round(size / MiB / (ms / 1000));
    const fullNote =
      `first handoff (the whole dot) ${Math.round(first!.ms)} ms (${mibps(first!.ms)} MiB/s), raw full send ` +
      `${Math.round(fullRaw)} ms (${mibps(fullRaw)} MiB/s); fill ${fill.toFixed(1)} s`;
    console.error(`bench: P13 ${label}: ${fullNote}`);

    let master = n1;
    const handoffs: number[] = [];
    const raw: number[] = [];
    const blocks = Math.max(1, Math.floor(size / MiB));
    for (let i = 0; i < o.samples; i++) {
      const from = master;
      const to = from === n0 ? n1 : n0;
      const data = randomBytes(MiB);
      const offset = randomInt(blocks) * MiB;
      await writeAt(join(livePath.get(from)!, 'data.bin'), data, offset);
      await writeAt(join(rawLive, 'data.bin'), data, offset);
      const snap = join(rawDir, `s${i + 1}`);
      const parent = snaps.at(-1)!;
      snaps.push(snap);
      await alternate(
        i,
        async () => {
          const [r] = await callsFrom(to, to, [procure(dot)], { results: true, timeoutMs: TIMEOUT_MS });
          handoffs.push(r!.ms);
          livePath.set(to, String(r!.result));
          master = to;
        },
        async () => raw.push(await rawSnapshotAndSend(n0, n1, { live: rawLive, snapshot: snap, parent, timeoutMs: TIMEOUT_MS })),
      );
      const moved = await readAt(join(livePath.get(to)!, 'data.bin'), MiB, offset);
      if (!moved.equals(data))
        throw new Error(`after handoff ${i + 1} to node ${to.node.index}, the uncommitted 1 MiB at ${offset} is not there`);
    }
    return [
      {
        ...slackRow({
          id: 'P13',
          what: 'handoff: Procure on another node → mounted there (1 MiB uncommitted on the old master)',
          size: label,
          samples: handoffs,
          reference: { what: 'snapshot -r + send -p | curl | receive', samples: raw },
          slackMs: P13_HANDOFF_SLACK_MS,
        }),
        note: `${fullNote}; ${await handoffSplit(n0, n1)}`,
      },
    ];
  } finally {
    await n0.node.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await deleteSubvolumes(snaps).catch(() => undefined);
    await deleteSubvolumes([rawLive]).catch(() => undefined);
    await removeTree(rawDir);
    const received = (await readdir(n1.recvDir)).filter((n) => /^s\d+$/.test(n));
    await deleteSubvolumes(received.map((n) => join(n1.recvDir, n))).catch(() => undefined);
  }
}

export interface StoreCostOptions {
  readonly dots: number;
  /** The idle window that measures the background rate of etcd requests. */
  readonly idleMs: number;
}

async function keyspaceBytes(c: BenchCluster): Promise<{ bytes: number; keys: number; largest: number }> {
  const keys = await c.cluster.etcd.keys('');
  let bytes = 0;
  let largest = 0;
  for (const k of keys) {
    const size = Buffer.byteLength(k.key) + Buffer.byteLength(k.value);
    bytes += size;
    largest = Math.max(largest, Buffer.byteLength(k.value));
  }
  return { bytes, keys: keys.length, largest };
}

export async function benchStoreCost(c: BenchCluster, o: StoreCostOptions): Promise<Row[]> {
  const names = Array.from({ length: o.dots }, (_, i) => `p13-store-${i}`);
  const owner = (i: number) => c.nodes[i % c.nodes.length]!;
  const onEachNode = (call: (name: string) => AgentCall) =>
    Promise.all(
      c.nodes.map((n) => {
        const mine = names.filter((_, i) => owner(i) === n).map(call);
        return mine.length === 0 ? Promise.resolve([]) : callsFrom(n, n, mine, { timeoutMs: TIMEOUT_MS });
      }),
    );
  try {
    const empty = await keyspaceBytes(c);
    await onEachNode((Name) => ({ method: 'Create', params: { Namespace: NS, Name } }));
    const created = await keyspaceBytes(c);

    // Background (leases, advertisers): an idle window right before the commits.
    const idle0 = await etcdCounters(c.cluster);
    const i0 = process.hrtime.bigint();
    await sleep(o.idleMs);
    const idle = countersSince(idle0, await etcdCounters(c.cluster));
    const idleMs = Number(process.hrtime.bigint() - i0) / 1e6;

    const before = await etcdCounters(c.cluster);
    const c0 = process.hrtime.bigint();
    await onEachNode((Name) => ({ method: 'Commit', params: { Namespace: NS, Name, Branch: '', Message: 'one', Metadata: {} } }));
    const commitMs = Number(process.hrtime.bigint() - c0) / 1e6;
    const during = countersSince(before, await etcdCounters(c.cluster));
    const committed = await keyspaceBytes(c);

    const scale = commitMs / idleMs;
    const perCommit = (x: number, bg: number) => (x - bg * scale) / o.dots;
    const unary = perCommit(during.unary, idle.unary);
    const writes = perCommit(during.writes, idle.writes);
    const streams = perCommit(during.streamMessages, idle.streamMessages);
    const nodes = `${o.dots} dots on ${c.nodes.length} nodes`;
    return [
      {
        id: 'P13',
        what: `etcd requests per commit (unary gRPC calls, background subtracted), ${nodes}`,
        unit: 'requests',
        figure: single(unary),
        note:
          `key writes per commit ${writes.toFixed(2)}, stream messages per commit ${streams.toFixed(2)}; ` +
          `background ${((idle.unary / idleMs) * 1000).toFixed(1)} requests/s; ${o.dots} commits in ${Math.round(commitMs)} ms`,
      },
      {
        id: 'P13',
        what: `etcd bytes per dot (keys + values), ${nodes}`,
        unit: 'B',
        figure: single((created.bytes - empty.bytes) / o.dots),
        note:
          `with one commit each: ${Math.round((committed.bytes - empty.bytes) / o.dots)} B per dot, ` +
          `${((committed.keys - empty.keys) / o.dots).toFixed(1)} keys per dot; largest value ` +
          `${(committed.largest / KiB).toFixed(1)} KiB (etcd's request limit: 1.5 MiB)`,
      },
    ];
  } finally {
    await onEachNode((Name) => ({ method: 'Delete', params: { Namespace: NS, Name } })).catch(() => undefined);
  }
}
