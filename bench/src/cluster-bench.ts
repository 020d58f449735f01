import { once } from 'node:events';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { MethodName } from '@dotmesh/rpc';
import {
  type Cleanup,
  type DotmeshNode,
  type DotmeshTestCluster,
  freePorts,
  routeCheck,
  startDotmeshCluster,
  type TestHost,
} from '@dotmesh/testkit';

/**
 * The cluster of P13: `nodes` dotmesh-servers in network namespaces sharing one real etcd (the
 * test kit's startDotmeshCluster: default etcd limits, node-to-node mTLS, each node on its own
 * sparse pool of `poolSize`), and on each node a directory for raw subvolumes on its pool
 * (`rawRoot`, never looked at by the server) and the raw reference's receiving end (raw-sink.ts
 * in its namespace, receiving into `recvDir` on its pool). RPC timings run in rpc-agent.ts
 * inside a node's namespace; the benchmark process never contacts a test address. Everything is
 * removed by `cleanup`.
 */
export interface BenchNode {
  readonly node: DotmeshNode;
  readonly host: TestHost;
  /** The server's pool mount point. */
  readonly mnt: string;
  readonly rawRoot: string;
  readonly sinkUrl: string;
  readonly recvDir: string;
}

export interface BenchCluster {
  readonly cluster: DotmeshTestCluster;
  readonly nodes: readonly BenchNode[];
}

const AGENT = join(import.meta.dirname, 'rpc-agent.ts');
const SINK = join(import.meta.dirname, 'raw-sink.ts');

export async function startBenchCluster(cleanup: Cleanup, o: { nodes: number; poolSize: string }): Promise<BenchCluster> {
  const cluster = await startDotmeshCluster({ cleanup, nodes: o.nodes, poolSize: o.poolSize });
  const nodes = await Promise.all(cluster.nodes.map((n) => benchNode(cleanup, n)));
  for (const from of nodes) for (const to of nodes) await routeCheck(from.host, to.host.address);
  return { cluster, nodes };
}

async function benchNode(cleanup: Cleanup, node: DotmeshNode): Promise<BenchNode> {
  const config = JSON.parse(await readFile(node.configFile, 'utf8')) as { mountPoint?: string; port: number; checkPort: number };
  const mnt = config.mountPoint ?? join(node.dir, 'mnt');
  const rawRoot = join(mnt, 'bench-raw');
  const recvDir = join(rawRoot, 'recv');
  await mkdir(recvDir, { recursive: true });
  const taken = new Set([config.port, config.checkPort, node.clusterPort]);
  const port = (await freePorts(4)).find((p) => !taken.has(p));
  if (port === undefined) throw new Error(`no free port for the raw sink on node ${node.index}`);
  const sink = node.host.spawn(process.execPath, [SINK, node.host.address, String(port), recvDir], { cleanup });
  const lines = createInterface({ input: sink.child.stdout! });
  const first = await Promise.race([
    once(lines, 'line').then(([l]) => String(l)),
    sink.exited.then(() => undefined),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000).unref()),
  ]);
  lines.close();
  if (first === undefined || !first.includes('listening'))
    throw new Error(`the raw sink on node ${node.index} did not start: ${sink.output()}`);
  return { node, host: node.host, mnt, rawRoot, sinkUrl: `http://${node.host.address}:${port}/sink`, recvDir };
}

export interface AgentCall {
  readonly method: MethodName;
  readonly params: unknown;
}

export interface TimedCall {
  readonly ms: number;
  readonly result?: unknown;
}

/**
 * Makes `calls` on `on`'s API from inside `from`'s namespace (rpc-agent.ts: one client, one
 * call after another) and returns each call's request → reply time (and reply, with `results`).
 */
export async function callsFrom(
  from: BenchNode,
  on: BenchNode,
  calls: readonly AgentCall[],
  o: { results?: boolean; warmup?: number; timeoutMs?: number } = {},
): Promise<TimedCall[]> {
  await routeCheck(from.host, on.host.address);
  const input = {
    url: on.node.url,
    user: 'admin',
    apiKey: on.node.apiKey,
    calls,
    results: o.results ?? false,
    warmup: o.warmup ?? 0,
  };
  const { stdout } = await from.host.exec(process.execPath, [AGENT, JSON.stringify(input)], {
    timeoutMs: o.timeoutMs ?? 30 * 60_000,
  });
  const out = stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as TimedCall & { error?: string });
  const failed = out.find((l) => l.error !== undefined);
  if (failed) throw new Error(`rpc-agent on node ${from.node.index} → node ${on.node.index}: ${failed.error}`);
  if (out.length !== calls.length) throw new Error(`rpc-agent answered ${out.length} of ${calls.length} calls`);
  return out;
}

/** Runs `argv` in `node`'s namespace and returns the time from spawn to exit (it must exit 0). */
export async function timedRun(node: BenchNode, argv: readonly string[], timeoutMs: number): Promise<number> {
  const start = process.hrtime.bigint();
  await node.host.exec(argv[0]!, argv.slice(1), { timeoutMs });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * The raw reference of a handoff: a read-only snapshot of `live` (on `from`'s pool), then
 * `btrfs send [-p parent] | curl -T-` into `to`'s raw sink, which pipes it into `btrfs receive`
 * and answers once receive exited 0. Timed from the snapshot's start to curl's exit, in
 * `from`'s namespace.
 */
export async function rawSnapshotAndSend(
  from: BenchNode,
  to: BenchNode,
  o: { live: string; snapshot: string; parent?: string; timeoutMs: number },
): Promise<number> {
  await routeCheck(from.host, to.host.address);
  const script =
    'set -e; url=$1; live=$2; snap=$3; shift 3; btrfs -q subvolume snapshot -r "$live" "$snap"; ' +
    'btrfs send -q "$@" "$snap" | curl -sS --fail-with-body -o /dev/null -T- "$url"';
  const parent = o.parent === undefined ? [] : ['-p', o.parent];
  return timedRun(from, ['bash', '-o', 'pipefail', '-c', script, 'bash', to.sinkUrl, o.live, o.snapshot, ...parent], o.timeoutMs);
}

/**
 * etcd's request counters (`/metrics`, read with curl inside etcd's namespace): unary gRPC
 * calls handled by every member (Range, Txn, Put, DeleteRange, LeaseGrant, ...), messages
 * received on streams (lease keep-alives, watch creations), and key writes (puts + deletes,
 * which every member applies: counted on the first member only). etcd 3.4 names its put
 * counter `etcd_debugging_mvcc_put_total`, 3.5+ `etcd_mvcc_put_total`.
 */
export interface EtcdCounters {
  readonly unary: number;
  readonly streamMessages: number;
  readonly writes: number;
}

const WRITE_COUNTERS = new Set([
  'etcd_mvcc_put_total',
  'etcd_debugging_mvcc_put_total',
  'etcd_mvcc_delete_total',
  'etcd_debugging_mvcc_delete_total',
]);

export async function etcdCounters(c: DotmeshTestCluster): Promise<EtcdCounters> {
  let unary = 0;
  let streamMessages = 0;
  let writes = 0;
  for (const [i, endpoint] of c.etcd.endpoints.entries()) {
    await routeCheck(c.etcd.host, new URL(endpoint).hostname);
    const { stdout } = await c.etcd.host.exec('curl', ['-sS', '--fail', `${endpoint}/metrics`], { timeoutMs: 10_000 });
    for (const line of stdout.split('\n')) {
      const m = /^(\w+)(\{[^}]*\})?\s+(\S+)$/.exec(line.trim());
      if (!m || line.startsWith('#')) continue;
      const [, name = '', labels = '', value] = m;
      const v = Number(value);
      if (name === 'grpc_server_handled_total' && labels.includes('grpc_type="unary"')) unary += v;
      else if (name === 'grpc_server_msg_received_total' && !labels.includes('grpc_type="unary"')) streamMessages += v;
      else if (i === 0 && WRITE_COUNTERS.has(name)) writes += v;
    }
  }
  return { unary, streamMessages, writes };
}

export function countersSince(before: EtcdCounters, after: EtcdCounters): EtcdCounters {
  return {
    unary: after.unary - before.unary,
    streamMessages: after.streamMessages - before.streamMessages,
    writes: after.writes - before.writes,
  };
}
