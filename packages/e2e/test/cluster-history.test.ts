import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster, waitFor } from '@dotmesh/testkit';
import { logged } from './cluster-helpers.ts';
import { checkHistory, replicatedEverywhere } from './history-check.ts';
import { type Acknowledged, type HistoryClient, startClient } from './history-clients.ts';
import { FAULT_KINDS, type FaultKind, injectFault, seededRandom } from './history-faults.ts';

/**
 * A history checker in the spirit of Jepsen: three servers (each in its own network namespace)
 * on a three-member etcd; three clients commit concurrently to their own `sync` dots (the
 * default on a multi-node cluster), two mastered on node 0 and one on node 1, and record every
 * acknowledged commit id with the SHA-256 of what they wrote (history-clients.ts). Meanwhile a
 * schedule injects faults of five kinds in turn, each healed before the next
 * (history-faults.ts): kill -9 of a server started again within its lease TTL and after it,
 * an etcd member killed and started again, node 2 (which masters no written dot) cut off and
 * healed, and a master's host gone until its dots failed over, then back. At the end, with replication settled, every acknowledged commit is listed on its
 * branch (or a `-DIVERGED-` branch) with exactly the written content on every node holding it,
 * and no commit id has two contents (history-check.ts). The output reports the trials, the
 * faults by kind and the losses.
 *
 * CI runs MIN_FAULTS faults (about 3 minutes). A longer run by hand:
 *   DOTMESH_HISTORY_SECONDS=1800 DOTMESH_HISTORY_SEED=7 DOTMESH_TEST_ROOT=/tmp/dmtest-me \
 *     node --test packages/e2e/test/cluster-history.test.ts
 * injects faults until at least that many seconds have passed (and at least MIN_FAULTS); the
 * seed (default: random, printed) makes a schedule repeatable.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);
const MIN_FAULTS = 20;
const LEASE_TTL_SECONDS = 5;
const RUN_SECONDS = Number(process.env.DOTMESH_HISTORY_SECONDS ?? 0);
const SEED = Number(process.env.DOTMESH_HISTORY_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe('history checker: concurrent sync commits under kills, partitions, etcd member losses and failovers', {
  skip,
  timeout: Math.max(20 * 60_000, (RUN_SECONDS + 900) * 1000),
}, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  before(async () => {
    cluster = await startDotmeshCluster({
      cleanup,
      nodes: 3,
      etcdMembers: 3,
      nodeLeaseTtlSeconds: LEASE_TTL_SECONDS,
      extraConfig: { syncCommitTimeoutMs: 4000, replicationSweepMs: 2000, failoverSweepMs: 1000 },
    });
  });
  after(() => cleanup.run());

  test(
    `≥ ${MIN_FAULTS} faults of ${FAULT_KINDS.length} kinds: every acknowledged commit is kept with its content, no commit id has two contents`,
    logged(
      () => cluster,
      async () => {
        assert.ok(Number.isFinite(RUN_SECONDS) && RUN_SECONDS >= 0, 'DOTMESH_HISTORY_SECONDS is a number of seconds');
        const [n0, n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode, DotmeshNode];
        const random = seededRandom(SEED);
        const started = Date.now();
        const history: Acknowledged[] = [];
        const writers: [number, DotmeshNode][] = [
          [0, n0],
          [1, n1],
          [2, n0],
        ];
        const dots = writers.map(([i]) => `history-${i}`);
        // Each dot made on its master (Procure makes it there) before the faults start.
        for (const [i, node] of writers)
          await node.admin.call('Procure', { Namespace: 'admin', Name: `history-${i}`, Subdot: '' });
        const clients: HistoryClient[] = writers.map(([index, node]) =>
          startClient({ index, dot: `history-${index}`, node, started, history }),
        );
        const faults = new Map<FaultKind, number>(FAULT_KINDS.map((k) => [k, 0]));
        const done: string[] = [];
        try {
          for (let i = 0; i < MIN_FAULTS || Date.now() - started < RUN_SECONDS * 1000; i++) {
            const kind = FAULT_KINDS[i % FAULT_KINDS.length]!;
            const what = await injectFault(kind, {
              cluster,
              bystander: n2,
              dots,
              leaseTtlSeconds: LEASE_TTL_SECONDS,
              random,
            });
            faults.set(kind, faults.get(kind)! + 1);
            done.push(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
            await new Promise((r) => setTimeout(r, 1000 + random() * 1500));
          }
        } finally {
          await Promise.all(clients.map((c) => c.stop()));
        }
        const faultSeconds = (Date.now() - started) / 1000;
        // Healed: every server answers, and every node's pool holds every acknowledged commit.
        await waitFor(async () => replicatedEverywhere(cluster, history), {
          timeoutMs: 180_000,
          intervalMs: 2000,
          what: 'every acknowledged commit on every node (replication settled)',
        });
        const report = await checkHistory(cluster, history, dots);
        const trials = clients.reduce((n, c) => n + c.stats.attempts, 0);
        const failures = new Map<string, number>();
        for (const c of clients) for (const [code, n] of c.stats.failures) failures.set(code, (failures.get(code) ?? 0) + n);
        console.log(
          [
            `history checker (seed ${SEED}): ${faultSeconds.toFixed(0)} s of faults`,
            `trials: ${trials} commit attempts by ${clients.length} clients; acknowledged: ${report.acknowledged}; refused or unknown: ${[...failures].map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}`,
            `faults: ${[...faults].map(([k, n]) => `${k} ${n}`).join(', ')} (${done.length} in all)`,
            `found: ${report.onBranch} on their branch, ${report.onDiverged} on a -DIVERGED- branch; ${report.commitsCompared} commit ids compared across ${report.copiesRead} copies`,
            `losses: ${report.lost.length}; wrong content: ${report.wrongContent.length}; commit ids with two contents: ${report.twoContents.length}`,
            ...done.map((d) => `  ${d}`),
          ].join('\n'),
        );
        assert.ok(done.length >= MIN_FAULTS, `${done.length} faults`);
        assert.ok(
          [...faults.values()].every((n) => n > 0),
          'every kind of fault was injected',
        );
        assert.ok(
          report.acknowledged >= clients.length * 5,
          `only ${report.acknowledged} acknowledged commits: the run proves little`,
        );
        assert.deepEqual(report.lost, [], 'no acknowledged commit is lost');
        assert.deepEqual(report.wrongContent, [], 'every acknowledged commit holds what was written');
        assert.deepEqual(report.twoContents, [], 'no commit id has two contents');
      },
    ),
  );
});
