import { randomBytes, randomInt } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createSubvolume, deleteSubvolumes, fillFile, removeTree, sh, writeAt } from './btrfs.ts';
import { type BenchCluster, type BenchNode, rawSnapshotAndSend } from './cluster-bench.ts';
import { formatBytes, MiB, percentile, ratio, rotate, summarize } from './harness.ts';
import { type Row, slackRow } from './report.ts';
import { type BenchServer, loggedAs, phasesNote } from './server.ts';

/**
 * P11 (issue 15) on P13's cluster of three nodes, and the Commit's latency by durability.
 *
 * A dot of `size` is made on node 0 (its master) and on a single-node server (the benchmark's
 * own, same machine); node 0's dot is replicated in full to nodes 1 and 2 beforehand. Per
 * sample, commit-agent.ts (in node 0's namespace; the single-node server's in the root one)
 * writes 1 MiB of fresh data at a random 1 MiB-aligned offset of the dot's file, times
 * `Commit`, and then polls nodes 1 and 2 until each one's own copy holds the new commit:
 * replication lag = Commit request → the last replica holding it. The branch is made `async`
 * for one batch and `sync` for the next (SetDurability), the single-node server (`async`, the
 * default alone) gets the same samples. Reference for the lag, in the same run: a raw twin of
 * the dot on node 0's pool (sent in full to node 1 beforehand) gets the same kind of write,
 * then `btrfs subvolume snapshot -r` + `btrfs send -p <previous> | curl -T-` into node 1's raw
 * sink (`btrfs receive`): one receiver, where replication sends to two at once. The four
 * batches rotate their order every round.
 *
 * Rows: the lag of an `async` branch against the raw send (target P11: p50 ≤ reference +
 * 300 ms); the Commit on a `sync` and on an `async` branch of the cluster, each against the
 * single-node server's Commit (ratio of the p50s; no target). p99 figures are in the notes, and
 * the lag row's note has the medians of the phases of node 0's sends and node 1's receives
 * during P11 (their `transfer timings` and `received commit` log lines, the initial full sends
 * included).
 * Failover time is P12's (p12-failover.ts, on a cluster of its own).
 */
export const P11_LAG_SLACK_MS = 300;
const NS = 'admin';
const TIMEOUT_MS = 60 * 60_000;
const AGENT = join(import.meta.dirname, 'commit-agent.ts');

export interface ReplicationOptions {
  readonly samples: number;
  readonly rounds: number;
  readonly pollMs: number;
}

interface AgentSample {
  readonly commitMs: number;
  readonly lagMs?: number;
}

interface Target {
  readonly url: string;
  readonly apiKey: string;
  readonly file: string;
}

/** The agent's input for `samples` commits (plus one untimed) of `dot` on `on`. */
function agentInput(on: Target, dot: string, size: number, samples: number, pollMs: number, replicas: readonly BenchNode[]) {
  return JSON.stringify({
    url: on.url,
    user: 'admin',
    apiKey: on.apiKey,
    namespace: NS,
    name: dot,
    file: on.file,
    fileBytes: size,
    changeBytes: MiB,
    samples,
    warmup: 1,
    pollMs,
    replicas: replicas.map((r) => ({ url: r.node.url, apiKey: r.node.apiKey })),
  });
}

function parseAgent(stdout: string, samples: number, where: string): AgentSample[] {
  const out = stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as AgentSample & { error?: string });
  const failed = out.find((l) => l.error !== undefined);
  if (failed) throw new Error(`commit-agent on ${where}: ${failed.error}`);
  if (out.length !== samples) throw new Error(`commit-agent on ${where} answered ${out.length} of ${samples} samples`);
  return out;
}

/** The pino log lines whose `time` (epoch ms) is at or after `since`. */
function loggedSince(lines: readonly string[], since: number): string[] {
  return lines.filter((l) => {
    try {
      return ((JSON.parse(l) as { time?: unknown }).time as number) >= since;
    } catch {
      return false;
    }
  });
}

/** The medians of the `ms` phases of `node`'s log lines `msg` since `since` (phasesNote). */
async function phasesSince(node: BenchNode, msg: string, since: number): Promise<string> {
  return phasesNote(loggedSince(loggedAs((await node.node.log()).split('\n'), msg), since));
}

const p99 = (xs: readonly number[]) => Math.round(percentile(xs, 99) * 10) / 10;

export async function benchReplication(
  c: BenchCluster,
  single: BenchServer,
  size: number,
  o: ReplicationOptions,
): Promise<Row[]> {
  const [n0, n1, n2] = c.nodes as [BenchNode, BenchNode, BenchNode];
  const label = formatBytes(size);
  const dot = `p11-lag-${label.replace(' ', '')}`;
  const rawDir = join(n0.rawRoot, dot);
  const rawLive = join(rawDir, 'live');
  const snaps: string[] = [];
  const since = Date.now();
  try {
    const seed = randomBytes(MiB);
    const live0 = String(await n0.node.admin.call('Procure', { Namespace: NS, Name: dot, Subdot: '' }));
    const liveSingle = String(await single.rpc.call('Procure', { Namespace: NS, Name: dot, Subdot: '' }));
    await fillFile(join(live0, 'data.bin'), size, seed);
    await fillFile(join(liveSingle, 'data.bin'), size, seed);
    for (const rpc of [n0.node.admin, single.rpc])
      await rpc.call('Commit', { Namespace: NS, Name: dot, Branch: '', Message: 'base', Metadata: {} });
    await mkdir(rawDir, { recursive: true });
    await createSubvolume(rawLive);
    await sh('cp', ['--reflink=auto', join(live0, 'data.bin'), join(rawLive, 'data.bin')]);
    snaps.push(join(rawDir, 's0'));
    await rawSnapshotAndSend(n0, n1, { live: rawLive, snapshot: snaps[0]!, timeoutMs: TIMEOUT_MS });

    const setDurability = (Durability: 'sync' | 'async') =>
      n0.node.admin.call('SetDurability', { Namespace: NS, Name: dot, Branch: '', WholeDot: false, Durability });
    const onCluster: Target = { url: n0.node.url, apiKey: n0.node.apiKey, file: join(live0, 'data.bin') };
    const onSingle: Target = { url: single.proc.url, apiKey: single.proc.apiKey, file: join(liveSingle, 'data.bin') };
    const clusterBatch = async (n: number) => {
      const { stdout } = await n0.host.exec(process.execPath, [AGENT, agentInput(onCluster, dot, size, n, o.pollMs, [n1, n2])], {
        timeoutMs: TIMEOUT_MS,
      });
      return parseAgent(stdout, n, 'node 0');
    };
    const singleBatch = async (n: number) => {
      const stdout = await sh(process.execPath, [AGENT, agentInput(onSingle, dot, size, n, o.pollMs, [])]);
      return parseAgent(stdout, n, 'the single-node server');
    };

    const asyncRuns: AgentSample[] = [];
    const syncRuns: AgentSample[] = [];
    const singleRuns: AgentSample[] = [];
    const raw: number[] = [];
    const blocks = Math.max(1, Math.floor(size / MiB));
    const perRound = Math.max(1, Math.ceil(o.samples / o.rounds));
    for (let round = 0; round * perRound < o.samples; round++) {
      const n = Math.min(perRound, o.samples - round * perRound);
      await rotate(round, [
        async () => {
          await setDurability('async');
          asyncRuns.push(...(await clusterBatch(n)));
        },
        async () => {
          await setDurability('sync');
          syncRuns.push(...(await clusterBatch(n)));
        },
        async () => singleRuns.push(...(await singleBatch(n))),
        async () => {
          for (let i = 0; i < n; i++) {
            await writeAt(join(rawLive, 'data.bin'), randomBytes(MiB), randomInt(blocks) * MiB);
            const snap = join(rawDir, `s${snaps.length}`);
            const parent = snaps.at(-1)!;
            snaps.push(snap);
            raw.push(await rawSnapshotAndSend(n0, n1, { live: rawLive, snapshot: snap, parent, timeoutMs: TIMEOUT_MS }));
          }
        },
      ]);
    }
    const lag = (runs: readonly AgentSample[]) => runs.map((r) => r.lagMs ?? Number.NaN);
    const commits = (runs: readonly AgentSample[]) => runs.map((r) => r.commitMs);
    const singleCommits = commits(singleRuns);
    const commitRow = (durability: 'sync' | 'async', runs: readonly AgentSample[]): Row => {
      const figure = summarize(commits(runs));
      const reference = summarize(singleCommits);
      return {
        id: 'P11',
        what: `Commit RPC (1 MiB change) on a \`${durability}\` branch of a three-node cluster`,
        size: label,
        unit: 'ms',
        figure,
        reference: { what: 'the same on a single-node server', stats: reference },
        ratio: ratio(figure.p50, reference.p50),
        note:
          `p99 ${p99(commits(runs))} ms vs single-node ${p99(singleCommits)} ms; ` +
          `p99 ratio ${(percentile(commits(runs), 99) / percentile(singleCommits, 99)).toFixed(2)}×`,
      };
    };
    return [
      {
        ...slackRow({
          id: 'P11',
          what: 'replication lag: Commit request (1 MiB change, `async` branch) → held by both other nodes',
          size: label,
          samples: lag(asyncRuns),
          reference: { what: 'snapshot -r + send -p | curl | receive', samples: raw },
          slackMs: P11_LAG_SLACK_MS,
        }),
        note:
          `p99 ${p99(lag(asyncRuns))} ms (raw ${p99(raw)} ms); on a \`sync\` branch the lag is ` +
          `p50 ${summarize(lag(syncRuns)).p50.toFixed(1)} / p99 ${p99(lag(syncRuns))} ms; node 0's sends, p50 ms: ` +
          (await phasesSince(n0, 'transfer timings', since)) +
          `; node 1's receives, p50 ms: ${await phasesSince(n1, 'received commit', since)}`,
      },
      commitRow('sync', syncRuns),
      commitRow('async', asyncRuns),
    ];
  } finally {
    await n0.node.admin.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await single.rpc.call('Delete', { Namespace: NS, Name: dot }).catch(() => undefined);
    await deleteSubvolumes(snaps).catch(() => undefined);
    await deleteSubvolumes([rawLive]).catch(() => undefined);
    await removeTree(rawDir);
    const received = (await readdir(n1.recvDir)).filter((n) => /^s\d+$/.test(n));
    await deleteSubvolumes(received.map((n) => join(n1.recvDir, n))).catch(() => undefined);
  }
}
