import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cleanup, type DotmeshNode, startDotmeshCluster, waitFor } from '@dotmesh/testkit';
import { atMost, summarize } from './harness.ts';
import type { Row } from './report.ts';

/** P12 (targets.md, issue 15): master host gone → first commit accepted on the new master, p50 ≤ 15 s with default TTLs. */
export const P12_LIMIT_MS = 15_000;

export interface FailoverOptions {
  readonly trials: number;
  /** The nodes' lease TTL (the server's default, 10 s, for the target). */
  readonly ttlSeconds: number;
  readonly poolSize: string;
}

const POLL_MS = 50;

/**
 * P12 on a cluster of three nodes of its own (servers in network namespaces on one etcd, the
 * default failover settings). Per trial, a dot of 1 MiB is made on the trial's victim node (each
 * node in turn) and committed (`sync`, the default: another node holds it); then the victim's
 * host goes — its links down, its server killed with -9 — and the clock runs until a Commit of
 * that dot is accepted by its new master: a client inside a live node's namespace polls that
 * node's view (DumpInternalState) for the branch's master and, once it names a live node, sends
 * the Commit there (again until one is accepted). Reference, in the same trial: the victim's
 * lease expiring — its address record gone from the live node's view — which no failover can
 * beat. Between trials the victim's links come up and its server starts again on its pool (its
 * copy becomes a replica); the next trial waits until every node is live.
 */
export async function benchFailover(cleanup: Cleanup, o: FailoverOptions): Promise<Row[]> {
  const cluster = await startDotmeshCluster({ cleanup, nodes: 3, nodeLeaseTtlSeconds: o.ttlSeconds, poolSize: o.poolSize });
  const nodes = cluster.nodes;
  const failover: number[] = [];
  const leaseGone: number[] = [];
  for (let trial = 0; trial < o.trials; trial++) {
    const victim = nodes[trial % nodes.length]!;
    const live = nodes.filter((n) => n !== victim);
    const watcher = live[0]!;
    await untilAllLive(nodes);
    const name = `p12-${trial}`;
    const path = String(await victim.admin.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' }));
    await writeFile(join(path, 'data.bin'), randomBytes(1024 * 1024));
    await victim.admin.call('Commit', { Namespace: 'admin', Name: name, Branch: '', Message: 'before', Metadata: {} });
    const fsId = String(await victim.admin.call('Lookup', { Namespace: 'admin', Name: name, Branch: '' }));

    const gone = performance.now();
    for (const dev of victim.host.devices) await victim.host.exec('ip', ['link', 'set', dev, 'down']);
    await victim.kill9();
    let leaseGoneAt: number | undefined;
    let acceptedAt: number | undefined;
    const deadline = gone + 10 * o.ttlSeconds * 1000 + 60_000;
    while (acceptedAt === undefined) {
      if (performance.now() > deadline) throw new Error(`P12 trial ${trial}: no commit accepted on a new master of ${fsId}`);
      const state = (await watcher.admin.call('DumpInternalState', '', { timeoutMs: 10_000 })) as Record<string, string>;
      const now = performance.now();
      if (leaseGoneAt === undefined && state[`nodes.${victim.nodeId}.clusterPort`] === undefined) leaseGoneAt = now;
      const master = live.find((n) => n.nodeId === state[`masters.${fsId}`]);
      if (master) {
        const ok = await master.admin
          .call('Commit', { Namespace: 'admin', Name: name, Branch: '', Message: 'after', Metadata: {} }, { timeoutMs: 10_000 })
          .then(
            () => true,
            () => false,
          );
        if (ok) acceptedAt = performance.now();
      }
      if (acceptedAt === undefined) await new Promise((r) => setTimeout(r, POLL_MS));
    }
    failover.push(acceptedAt - gone);
    leaseGone.push((leaseGoneAt ?? acceptedAt) - gone);
    for (const dev of victim.host.devices) await victim.host.exec('ip', ['link', 'set', dev, 'up']);
    await victim.start();
  }
  const figure = summarize(failover);
  const reference = summarize(leaseGone);
  return [
    {
      id: 'P12',
      what: `failover: master host gone → first commit accepted on the new master (3 nodes, lease TTL ${o.ttlSeconds} s)`,
      unit: 'ms',
      figure,
      reference: { what: 'its lease expiring (address gone from a live view)', stats: reference },
      diff: figure.p50 - reference.p50,
      verdict: atMost(`p50 ≤ ${P12_LIMIT_MS} ms`, figure.p50, P12_LIMIT_MS, 'ms'),
      note: `max ${Math.round(figure.max)} ms over ${failover.length} trials`,
    },
  ];
}

/** Waits until every node's view lists every node (a restarted victim advertises itself again). */
async function untilAllLive(nodes: readonly DotmeshNode[]): Promise<void> {
  await waitFor(
    async () => {
      for (const n of nodes) {
        const state = (await n.admin.call('DumpInternalState', 'nodes.')) as Record<string, string>;
        if (!nodes.every((m) => state[`nodes.${m.nodeId}.clusterPort`] !== undefined)) return false;
      }
      return true;
    },
    { timeoutMs: 120_000, intervalMs: 250, what: 'every node to be live' },
  );
}
