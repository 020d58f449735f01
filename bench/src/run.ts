/**
 * Runs the benchmarks of targets.md (P1-P11, P13) against a real dotmesh-server on a
 * loop-file btrfs pool (P2, P3 also on a second server with the installed default config; P4, P5:
 * two servers in two network namespaces, pair-hosts.ts; P9: a server of its own serving the volume
 * plugin of a private dockerd, p9-docker.ts; P8: the built CSI driver, p8-csi.ts, and 1,000 volumes
 * published through it, p8-csi-many.ts; P8K: snapshot → restored PVC through Kubernetes on a one-node
 * test cluster of its own with the CSI driver installed from docs/kubernetes.md, p8-csi-restore.ts; P13: a cluster of three nodes in network namespaces
 * on one etcd, cluster-bench.ts; P16: a one-node test cluster of its own with Dotmesh installed from docs/kubernetes.md,
 * p16-k8s.ts (k8s-bench-cluster.ts); P19: PVCs from a DotCommit of a server outside on P16's cluster, p19-populator.ts; P17: a pvcPerNode node recycled onto a replacement on a one-node test cluster of its own, p17-recycle.ts; R7: a three-member etcd of its own, two members frozen, r7-quorum.ts; P12: failover on a cluster of
 * three nodes of its own, each trial's master host taken away, p12-failover.ts; P11: replication lag and
 * the Commit by durability on P13's cluster against the single-node server, p11-replication.ts), each against its reference
 * measured in the same run; prints a table and writes JSON (see report.ts). Needs root and btrfs
 * (P4, P5 also network namespaces, curl and rsync; P9 Debian's docker.io and busybox-static, and
 * the cached PostgreSQL rootfs of testkit, built with debootstrap when missing); everything it
 * makes (servers, dockerd, containers, namespaces, pools, loop devices, mounts, sockets, files)
 * is removed at the end, after a failure, and on SIGINT/SIGTERM.
 *
 * Usage: node bench/src/run.ts [--smoke] [--only P1,P6] [--out FILE] [--markdown FILE]
 *                              [--sizes 1M,100M] [--dm dist/dm.mjs]
 *   --smoke     tiny sizes and few samples (CI: proves the benchmarks still run; no thresholds)
 *   --only      benchmarks to run (default: all but P8K and P17, which run only when named)
 *   --out       JSON result file (default: bench/results/latest.json, none with --smoke)
 *   --markdown  also write the result table as Markdown
 *   --sizes     dot sizes for P1-P3 (default 1M,100M,1G,10G; smoke 1M)
 *   --dm        the dm bundle for P6/P10 (default dist/dm.mjs; run `npm run build` first)
 * Exit status: 0 when every benchmark ran (whatever the verdicts), 1 when one failed to run.
 */
import { existsSync, statfsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseSize } from '@dotmesh/rpc/server-defaults';
import { Cleanup, DM_BUNDLE, findK8sTools, isCI, missingCapabilities, testRoot } from '@dotmesh/testkit';
import { type BenchCluster, startBenchCluster } from './cluster-bench.ts';
import { atMost, formatBytes, GiB, MiB, ratio, single } from './harness.ts';
import { type K8sBenchCluster, startK8sBenchCluster } from './k8s-bench-cluster.ts';
import { describeMachine } from './machine.ts';
import { benchCommit } from './p1-commit.ts';
import { benchBranch } from './p2-branch.ts';
import { benchRollback } from './p3-rollback.ts';
import { benchIncrementalPush } from './p4-push.ts';
import { benchClone } from './p5-clone.ts';
import { benchManyDots } from './p6-many-dots.ts';
import { benchThroughput } from './p7-throughput.ts';
import { benchCsi } from './p8-csi.ts';
import { benchCsiManyVolumes } from './p8-csi-many.ts';
import { benchCsiRestore } from './p8-csi-restore.ts';
import { benchCommitUnderLoad, benchDockerRun, type DockerBench, startDockerBench } from './p9-docker.ts';
import { benchCli } from './p10-cli.ts';
import { benchReplication } from './p11-replication.ts';
import { benchFailover } from './p12-failover.ts';
import { benchForwarding, benchHandoff, benchStoreCost } from './p13-cluster.ts';
import { benchK8sVolume } from './p16-k8s.ts';
import { benchRecycle } from './p17-recycle.ts';
import { benchPopulator } from './p19-populator.ts';
import { type BenchPair, startPair } from './pair-hosts.ts';
import { benchQuorumLoss } from './r7-quorum.ts';
import { markdownTable, type Report, type Row, textTable } from './report.ts';
import { type BenchServer, type BenchTarget, startBenchServer } from './server.ts';
import { dropDot, dropPair, prepareDot, preparePair, type SizedDot } from './sized.ts';

const ALL = [
  'P1',
  'P2',
  'P3',
  'P4',
  'P5',
  'P6',
  'P7',
  'P8',
  'P8K',
  'P9',
  'P10',
  'P11',
  'P12',
  'P13',
  'P16',
  'P17',
  'P19',
  'R7',
] as const;
/**
 * Run only when named in --only: each starts a Kubernetes test cluster of its own and drains or
 * snapshots through it (4–5 minutes each even in smoke mode), which the CI's smoke budget (≤ 5
 * minutes for every benchmark) cannot hold beside P16's cluster. docs/benchmarks.md says how to
 * run them.
 */
const ON_REQUEST: readonly (typeof ALL)[number][] = ['P8K', 'P17'];
/**
 * P2 and P3 also run on a server with the config `dm cluster init` writes by default (server.ts
 * installedConfig: preallocated pool, HTTPS, Docker plugin and engine socket), beside the bare
 * fixture and against the same raw reference, for dots up to this size (its preallocated pool
 * is INSTALLED_POOL; P2/P3 are size-independent, which the bare fixture's scaling rows check).
 */
const INSTALLED_MAX_SIZE = 100 * MiB;
const INSTALLED_POOL = '2G';
const INSTALLED = 'installed config';
/** P1's "a 10 GiB dot within 1.2× of a 1 MiB dot", applied to P2/P3's "size-independent" too. */
const SIZE_RATIO = 1.2;

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
    markdown: { type: 'string' },
    sizes: { type: 'string' },
    dm: { type: 'string' },
  },
});
const smoke = values.smoke === true;
const only = new Set(
  (values.only ?? ALL.filter((id) => !ON_REQUEST.includes(id)).join(',')).split(',').map((x) => x.trim().toUpperCase()),
);
for (const id of only)
  if (!(ALL as readonly string[]).includes(id)) throw new Error(`--only: unknown benchmark ${id} (known: ${ALL})`);
const sizes = (values.sizes ?? (smoke ? '1M' : '1M,100M,1G,10G')).split(',').map((x) => parseSize(x.trim()));
const dmBundle = resolve(values.dm ?? DM_BUNDLE);
const out = values.out ?? (smoke ? undefined : resolve(import.meta.dirname, '../results/latest.json'));
const params = smoke
  ? {
      sizes,
      p1Samples: 3,
      p1Unflushed: 1,
      p2Samples: 3,
      p3Samples: 3,
      p4: { sizes: [16 * MiB], samples: 2, pollMs: 10 },
      p5: { bigSize: 32 * MiB, bigSamples: 1, files: 2000, filesSamples: 1, pollMs: 10 },
      p6Dots: 20,
      p6Samples: 2,
      p7: { clients: 4, seconds: 0.5, commits: 20 },
      p8Samples: 3,
      p8Volumes: 20,
      p8k: { sizes: [MiB, 16 * MiB], samples: 2, poolSize: '2G' },
      p9Run: { runs: 3, warmup: 1 },
      p9Commit: { commits: 5, pgScale: 1, pgClients: 4, spacingMs: 200 },
      p10Samples: 2,
      p11: { size: 16 * MiB, samples: 2, rounds: 2, pollMs: 5 },
      p13: { handoffSize: 16 * MiB, handoffSamples: 2, rounds: 2, callsPerRound: 5, storeDots: 12, idleMs: 1000 },
      p12: { trials: 3, ttlSeconds: 3 },
      p16: { samples: 3, warmup: 1 },
      p17: { samples: 1, dots: 1 },
      p19: { size: MiB, firstSamples: 1, againSamples: 1, warmup: 0 },
      r7Samples: 2,
    }
  : {
      sizes,
      p1Samples: 30,
      p1Unflushed: 5,
      p2Samples: 20,
      p3Samples: 20,
      p4: { sizes: [GiB, 10 * GiB], samples: 5, pollMs: 10 },
      p5: { bigSize: 2 * GiB, bigSamples: 3, files: 100_000, filesSamples: 3, pollMs: 20 },
      p6Dots: 1000,
      p6Samples: 10,
      p7: { clients: 8, seconds: 5, commits: 200 },
      p8Samples: 30,
      p8Volumes: 1000,
      p8k: { sizes: [GiB, 10 * GiB], samples: 5, poolSize: '16G' },
      p9Run: { runs: 20, warmup: 3 },
      p9Commit: { commits: 30, pgScale: 10, pgClients: 4, spacingMs: 200 },
      p10Samples: 20,
      p11: { size: GiB, samples: 30, rounds: 5, pollMs: 5 },
      p13: { handoffSize: GiB, handoffSamples: 10, rounds: 6, callsPerRound: 20, storeDots: 1000, idleMs: 5000 },
      p12: { trials: 10, ttlSeconds: 10 },
      p16: { samples: 20, warmup: 2 },
      p17: { samples: 3, dots: 3 },
      p19: { size: GiB, firstSamples: 3, againSamples: 5, warmup: 1 },
      r7Samples: 10,
    };

const pairs = only.has('P4') || only.has('P5');
/** P11 runs on P13's cluster (cluster()), which either of them starts. */
const clustered = only.has('P11') || only.has('P13');
const missing = missingCapabilities([
  'root',
  'btrfs',
  'losetup',
  ...(pairs || clustered ? (['netns', 'etcd'] as const) : []),
  ...(only.has('R7') ? (['etcd'] as const) : []),
  ...(only.has('P12') ? (['netns', 'etcd'] as const) : []),
  ...(only.has('P16') || only.has('P19') || only.has('P8K') || only.has('P17') ? (['netns'] as const) : []),
  ...(only.has('P9') ? (['netns', 'docker'] as const) : []),
]);
if (missing.length > 0) {
  console.error(`bench: cannot run: ${missing.join('; ')}`);
  process.exit(isCI() ? 1 : 0);
}
const maxSize = Math.max(...sizes);
// Pool: the largest dot twice (dot + raw twin) plus room for the 100 MiB unflushed snapshots.
const poolBytes = 2 * maxSize + 8 * GiB;
// P4/P5: two servers' pools, each up to twice the largest of their dots (dot + raw copy).
const pairMax = Math.max(...(only.has('P4') ? params.p4.sizes : []), ...(only.has('P5') ? [params.p5.bigSize] : []), 0);
const pairPoolBytes = 2 * pairMax + 4 * GiB;
// P9: its own sparse pool; two pgbench databases (-s 10: ~160 MiB each, plus WAL) and their snapshots.
const P9_POOL = '16G';
// P16: the node's sparse pool (docs/kubernetes.md's 10G, barely used), the images and the node's containerd.
const P16_HOST_BYTES = 2 * GiB;
// P19: the dots outside (one per first-time sample) and their copies in the node's pool, the CSI images.
const P19_HOST_BYTES = 2 * params.p19.size * params.p19.firstSamples + 2 * GiB;
// P8K: the node's sparse pool holds each size's data once (snapshots and restores share it).
const P8K_HOST_BYTES = params.p8k.sizes.reduce((a, b) => a + b, 0) + 2 * GiB;
// P17: the cloud disks (1G each, sparse), the images and the containerd of the node and its replacements.
const P17_HOST_BYTES = 3 * GiB;
// P12: three nodes' sparse pools, a 1 MiB dot per trial.
const P12_POOL = '2G';
const P12_HOST_BYTES = 3 * GiB;
const installedBytes = only.has('P2') || only.has('P3') ? parseSize(INSTALLED_POOL) : 0;
// P13: three nodes' pools; nodes 0 and 1 hold the handoff dot and node 0 its raw twin too (P11
// after it: every node its lag dot, node 0 its raw twin and node 1 the twin's received copies).
const clusterPoolBytes = 2 * Math.max(params.p13.handoffSize, params.p11.size) + 2 * GiB;
const needHost =
  2 * maxSize +
  4 * GiB +
  installedBytes +
  (pairs ? 4 * pairMax + 4 * GiB : 0) +
  (only.has('P9') ? 4 * GiB : 0) +
  (clustered ? 3 * clusterPoolBytes : 0) +
  (only.has('P12') ? P12_HOST_BYTES : 0) +
  (only.has('P16') || only.has('P19') ? P16_HOST_BYTES : 0) +
  (only.has('P19') ? P19_HOST_BYTES : 0) +
  (only.has('P8K') ? P8K_HOST_BYTES : 0) +
  (only.has('P17') ? P17_HOST_BYTES : 0);
const free = (() => {
  const s = statfsSync(testRoot());
  return s.bavail * s.bsize;
})();
if (free < needHost) {
  console.error(`bench: needs ${Math.ceil(needHost / GiB)} GiB free under ${testRoot()}, has ${Math.floor(free / GiB)} GiB`);
  process.exit(1);
}

const cleanup = new Cleanup();
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    console.error(`bench: ${sig}: cleaning up`);
    void cleanup.run().finally(() => process.exit(130));
  });
}

const rows: Row[] = [];
const errors: { id: string; error: string }[] = [];
async function step(id: string, fn: () => Promise<Row[]>): Promise<void> {
  const started = Date.now();
  try {
    const got = await fn();
    rows.push(...got);
    console.error(`bench: ${id} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
    errors.push({ id, error });
    console.error(`bench: ${id} FAILED: ${error}`);
  }
}

const started = Date.now();
try {
  const s: BenchServer = await startBenchServer(cleanup, `${Math.ceil(poolBytes / GiB)}G`);
  console.error(`bench: ${s.serverBin} on a ${Math.ceil(poolBytes / GiB)} GiB sparse pool at ${s.mnt}`);
  if (only.has('P1') || only.has('P2') || only.has('P3')) {
    const installed =
      only.has('P2') || only.has('P3') ? await startBenchServer(cleanup, INSTALLED_POOL, { installed: true }) : undefined;
    if (installed)
      console.error(`bench: ${INSTALLED}: ${installed.serverBin} on a preallocated ${INSTALLED_POOL} pool at ${installed.mnt}`);
    await sizeScaling(s, installed);
  }
  if (pairs) await transfers();
  if (only.has('P7')) await step('P7', () => benchThroughput(s, params.p7));
  if (only.has('P8')) {
    const tools = findK8sTools();
    // Like the capabilities above: without the tools P8 is left out, except under CI.
    if (!tools.ok && !isCI())
      console.error(`bench: P8 left out: it needs csi.proto from the Kubernetes test tools: ${tools.reason}`);
    else
      await step('P8', async () => {
        if (!tools.ok) throw new Error(`P8 needs csi.proto from the Kubernetes test tools: ${tools.reason}`);
        const csiProto = tools.tools.protos.csi;
        return [
          ...(await benchCsi(cleanup, s, { samples: params.p8Samples, csiProto })),
          ...(await benchCsiManyVolumes(cleanup, s, { volumes: params.p8Volumes, csiProto })),
        ];
      });
  }
  const haveDm = existsSync(dmBundle);
  if (!haveDm && (only.has('P10') || only.has('P6')))
    console.error(`bench: ${dmBundle} is missing (npm run build): no dm figures`);
  if (only.has('P10'))
    await step('P10', async () => {
      if (!haveDm) throw new Error(`${dmBundle} is missing: run 'npm run build' first`);
      return benchCli(s, dmBundle, params.p10Samples);
    });
  if (only.has('P6'))
    await step('P6', () =>
      benchManyDots(cleanup, s, { dots: params.p6Dots, samples: params.p6Samples, dmBundle: haveDm ? dmBundle : undefined }),
    );
  if (only.has('P9')) await docker();
  if (clustered) await cluster(s);
  if (only.has('P12')) await failover();
  if (only.has('R7')) await step('R7', () => benchQuorumLoss(cleanup, { samples: params.r7Samples }));
  // P16 and P19 share one cluster (k8s-bench-cluster.ts), started by the first and torn down after both.
  const k8sLocal = new Cleanup();
  cleanup.add(() => k8sLocal.run(), 'the P16/P19 test cluster');
  let k8sCluster: Promise<K8sBenchCluster> | undefined;
  const sharedK8s = () => {
    k8sCluster ??= startK8sBenchCluster(k8sLocal, (line) => console.error(`bench: P16/P19: ${line}`));
    return k8sCluster;
  };
  const log = (line: string) => console.error(`bench: ${line}`);
  for (const [id, run] of [
    ['P16', async () => benchK8sVolume(await sharedK8s(), { ...params.p16, log })],
    ['P19', async () => benchPopulator(await sharedK8s(), { ...params.p19, log })],
    ['P8K', () => benchCsiRestore({ ...params.p8k, log })],
  ] as const) {
    // The shared cluster goes before P8K starts its own (two clusters would share the CPU).
    if (id === 'P8K')
      await k8sLocal.run().catch((e: unknown) => {
        errors.push({ id: 'P16/P19 cleanup', error: String(e) });
        console.error(`bench: P16/P19 cleanup FAILED: ${e}`);
      });
    if (!only.has(id)) continue;
    const k8s = missingCapabilities(['k8s']);
    // Like P8: without the Kubernetes test tools P16, P19 and P8K are left out, except under CI.
    if (k8s.length > 0 && !isCI()) console.error(`bench: ${id} left out: it needs a test cluster: ${k8s.join('; ')}`);
    else
      await step(id, async () => {
        if (k8s.length > 0) throw new Error(`${id} needs a test cluster: ${k8s.join('; ')}`);
        if (!existsSync(dmBundle))
          throw new Error(`${dmBundle} is missing: run 'npm run build' first (${id} builds its images from dist/)`);
        return run();
      });
  }
  if (only.has('P17')) {
    const k8s = missingCapabilities(['k8s']);
    if (k8s.length > 0 && !isCI()) console.error(`bench: P17 left out: it needs a test cluster: ${k8s.join('; ')}`);
    else
      await step('P17', async () => {
        if (k8s.length > 0) throw new Error(`P17 needs a test cluster: ${k8s.join('; ')}`);
        if (!existsSync(dmBundle))
          throw new Error(`${dmBundle} is missing: run 'npm run build' first (P17 builds its images from dist/)`);
        return benchRecycle({ ...params.p17, log: (line) => console.error(`bench: ${line}`) });
      });
  }
} catch (e) {
  errors.push({ id: 'setup', error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  console.error(`bench: setup FAILED: ${errors.at(-1)?.error}`);
} finally {
  try {
    await cleanup.run();
  } catch (e) {
    errors.push({ id: 'cleanup', error: String(e) });
    console.error(`bench: cleanup FAILED: ${e}`);
  }
}

/** P4 and P5 on two servers in two network namespaces (pair-hosts.ts). */
async function transfers(): Promise<void> {
  // Torn down as soon as P4/P5 are done, so two idle servers do not share the CPU with later benchmarks.
  const local = new Cleanup();
  cleanup.add(() => local.run(), 'P4/P5 hosts and servers');
  let pair: BenchPair | undefined;
  const poolSize = `${Math.ceil(pairPoolBytes / GiB)}G`;
  try {
    await step('P4/P5 setup', async () => {
      pair = await startPair(local, poolSize);
      console.error(`bench: two hosts ${pair.a.host.address} → ${pair.b.host.address}, ${poolSize} pools each`);
      return [];
    });
    if (!pair) return;
    const p = pair;
    if (only.has('P4'))
      for (const size of params.p4.sizes)
        await step(`P4 ${formatBytes(size)}`, () => benchIncrementalPush(local, p, size, params.p4));
    if (only.has('P5')) await step('P5', () => benchClone(local, p, params.p5));
  } finally {
    await step('P4/P5 teardown', async () => {
      await local.run();
      return [];
    });
  }
}

/**
 * P13 and P11 on a cluster of three nodes of their own, torn down as soon as they are done (P11
 * also on `single`, the benchmark's single-node server).
 */
async function cluster(single: BenchServer): Promise<void> {
  const local = new Cleanup();
  cleanup.add(() => local.run(), 'P13 cluster');
  let c: BenchCluster | undefined;
  const poolSize = `${Math.ceil(clusterPoolBytes / GiB)}G`;
  try {
    await step('P13 setup', async () => {
      c = await startBenchCluster(local, { nodes: 3, poolSize });
      console.error(`bench: three nodes ${c.nodes.map((n) => n.host.address).join(', ')} on one etcd, ${poolSize} pools each`);
      return [];
    });
    if (!c) return;
    const cc = c;
    const p = params.p13;
    if (only.has('P13')) {
      await step('P13 forwarding', () => benchForwarding(cc, { rounds: p.rounds, callsPerRound: p.callsPerRound }));
      await step(`P13 handoff ${formatBytes(p.handoffSize)}`, () =>
        benchHandoff(cc, p.handoffSize, { samples: p.handoffSamples }),
      );
    }
    if (only.has('P11'))
      await step(`P11 replication ${formatBytes(params.p11.size)}`, () =>
        benchReplication(cc, single, params.p11.size, params.p11),
      );
    if (only.has('P13')) await step('P13 store cost', () => benchStoreCost(cc, { dots: p.storeDots, idleMs: p.idleMs }));
  } finally {
    await step('P13 teardown', async () => {
      await local.run();
      return [];
    });
  }
}

/** P12 on a cluster of three nodes of its own, torn down as soon as P12 is done. */
async function failover(): Promise<void> {
  const local = new Cleanup();
  cleanup.add(() => local.run(), 'P12 cluster');
  try {
    await step('P12', () => benchFailover(local, { ...params.p12, poolSize: P12_POOL }));
  } finally {
    await step('P12 teardown', async () => {
      await local.run();
      return [];
    });
  }
}

/** P9 on a dockerd and a server of their own, torn down as soon as P9 is done. */
async function docker(): Promise<void> {
  const local = new Cleanup();
  cleanup.add(() => local.run(), 'P9 dockerd and server');
  let d: DockerBench | undefined;
  try {
    await step('P9 setup', async () => {
      d = await startDockerBench(local, P9_POOL);
      console.error(`bench: dockerd at ${d.engine.socket}, volume driver ${d.driver}, ${P9_POOL} pool at ${d.s.mnt}`);
      return [];
    });
    if (!d) return;
    const dd = d;
    await step('P9 docker run', () => benchDockerRun(dd, params.p9Run));
    await step('P9 commit under pgbench', () => benchCommitUnderLoad(local, dd, params.p9Commit));
  } finally {
    await step('P9 teardown', async () => {
      await local.run();
      return [];
    });
  }
}

async function sizeScaling(s: BenchServer, installed: BenchServer | undefined): Promise<void> {
  for (const size of [...sizes].sort((a, b) => a - b)) {
    const t0 = Date.now();
    let pair: Awaited<ReturnType<typeof preparePair>> | undefined;
    let installedDot: SizedDot | undefined;
    await step(`fill ${formatBytes(size)}`, async () => {
      pair = await preparePair(s, size);
      if (installed && size <= INSTALLED_MAX_SIZE) installedDot = await prepareDot(installed, size);
      console.error(`bench: filled the ${pair.label} copies in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return [];
    });
    if (!pair) continue;
    const p = pair;
    const targets: BenchTarget[] = [
      { s, d: p },
      ...(installed && installedDot ? [{ s: installed, d: installedDot, config: INSTALLED }] : []),
    ];
    const withNotes = (rows: Row[]) => {
      for (const r of rows) if (r.note) console.error(`bench: ${r.id} ${r.what}, ${r.size}: ${r.note}`);
      return rows;
    };
    if (only.has('P1'))
      await step(`P1 ${p.label}`, () => benchCommit(s, p, { samples: params.p1Samples, unflushedSamples: params.p1Unflushed }));
    if (only.has('P2')) await step(`P2 ${p.label}`, async () => withNotes(await benchBranch(targets, p, params.p2Samples)));
    if (only.has('P3')) await step(`P3 ${p.label}`, async () => withNotes(await benchRollback(targets, p, params.p3Samples)));
    await step(`drop ${p.label}`, async () => {
      await dropPair(s, p);
      if (installed && installedDot) await dropDot(installed, installedDot);
      return [];
    });
  }
  if (sizes.length > 1) rows.push(...scalingRows());
}

/** p50 at the largest size over p50 at the smallest, for each size-dependent figure. */
function scalingRows(): Row[] {
  const groups = new Map<string, Row[]>();
  for (const r of rows)
    if (r.size !== undefined) groups.set(`${r.id} ${r.what}`, [...(groups.get(`${r.id} ${r.what}`) ?? []), r]);
  const out: Row[] = [];
  for (const same of groups.values()) {
    const first = same[0]!; // rows were added smallest size first
    const last = same.at(-1)!;
    if (first === last) continue;
    const k = ratio(last.figure.p50, first.figure.p50);
    const refK = first.reference && last.reference ? ratio(last.reference.stats.p50, first.reference.stats.p50) : undefined;
    out.push({
      id: first.id,
      what: `${first.what}: ${last.size} vs ${first.size} dot, p50 ratio`,
      unit: '×',
      figure: single(k),
      ...(refK === undefined ? {} : { reference: { what: 'same ratio of the reference', stats: single(refK) } }),
      verdict: atMost(`≤ ${SIZE_RATIO}×`, k, SIZE_RATIO, '×'),
    });
  }
  return out;
}

const report: Report = {
  date: new Date().toISOString(),
  mode: smoke ? 'smoke' : 'full',
  machine: describeMachine(testRoot()),
  params: {
    ...params,
    sizes: sizes.map(formatBytes),
    p4: { ...params.p4, sizes: params.p4.sizes.map(formatBytes) },
    p5: { ...params.p5, bigSize: formatBytes(params.p5.bigSize) },
    p11: { ...params.p11, size: formatBytes(params.p11.size) },
    p13: { ...params.p13, handoffSize: formatBytes(params.p13.handoffSize) },
    dmBundle,
    durationS: Math.round((Date.now() - started) / 1000),
  },
  rows,
  errors,
};
console.log(textTable(rows));
for (const e of errors) console.log(`FAILED ${e.id}: ${e.error.split('\n')[0]}`);
if (out) {
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  console.error(`bench: wrote ${out}`);
}
if (values.markdown) await writeFile(values.markdown, `${markdownTable(rows)}\n`);
console.error(`bench: ${Math.round((Date.now() - started) / 1000)} s${smoke ? ' (smoke)' : ''}`);
process.exitCode = errors.length > 0 ? 1 : 0;
