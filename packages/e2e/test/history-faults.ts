import { type DotmeshNode, type DotmeshTestCluster, waitFor } from '@dotmesh/testkit';
import { listedMaster } from './cluster-helpers.ts';

/**
 * The faults of the history checker (cluster-history.test.ts), each injected and then healed
 * before the next one:
 * - `server-kill`: kill -9 of a node's server, started again at once (within its lease TTL);
 * - `server-kill-late`: the same, started again only after its lease TTL has passed;
 * - `etcd-member`: one of the three etcd members killed (kill -9), started again after a pause;
 * - `partition`: the node that masters no written dot cut off (its links down: it reaches
 *   neither the other nodes nor etcd), then healed;
 * - `master-host-loss`: a node that masters written dots gone (links down, its server killed
 *   with -9) until every dot it mastered has failed over to another node, then back (links up,
 *   server started on its pool: what it held that the new master lacks goes to a -DIVERGED-
 *   branch, and it becomes a replica).
 */
export const FAULT_KINDS = ['server-kill', 'etcd-member', 'partition', 'server-kill-late', 'master-host-loss'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultTarget {
  readonly cluster: DotmeshTestCluster;
  /** The node that masters no dot the clients write. */
  readonly bystander: DotmeshNode;
  /** The dots the clients write. */
  readonly dots: readonly string[];
  readonly leaseTtlSeconds: number;
  /** A number in [0, 1) (the schedule's seeded random). */
  readonly random: () => number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Injects one fault of `kind` and heals it; returns what it did (for the test's output). */
export async function injectFault(kind: FaultKind, t: FaultTarget): Promise<string> {
  const nodes = t.cluster.nodes;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(t.random() * xs.length)]!;
  switch (kind) {
    case 'server-kill': {
      const node = pick(nodes);
      await node.kill9();
      await sleep(500 + t.random() * 1000);
      await node.start();
      return `kill -9 of node ${node.index}'s server, started again within the lease TTL`;
    }
    case 'server-kill-late': {
      const node = pick(nodes);
      await node.kill9();
      await sleep((t.leaseTtlSeconds + 2) * 1000);
      await node.start();
      return `kill -9 of node ${node.index}'s server, started again after the lease TTL (${t.leaseTtlSeconds} s)`;
    }
    case 'etcd-member': {
      const member = Math.floor(t.random() * t.cluster.etcd.endpoints.length);
      await t.cluster.etcd.kill9Member(member);
      await sleep(1000 + t.random() * 2000);
      await t.cluster.etcd.startMember(member);
      return `kill -9 of etcd member ${member}, started again`;
    }
    case 'master-host-loss': {
      const others = nodes.filter((n) => n !== t.bystander);
      const masters = await mastersOf(t.bystander, t.dots);
      const holding = others.filter((n) => masters.includes(n.nodeId));
      const node = pick(holding.length > 0 ? holding : others);
      const mastered = t.dots.filter((_, i) => masters[i] === node.nodeId);
      const started = Date.now();
      for (const dev of node.host.devices) await node.host.exec('ip', ['link', 'set', dev, 'down']);
      await node.kill9();
      try {
        const alive = nodes.filter((n) => n !== node);
        await waitFor(
          async () => {
            const now = await mastersOf(alive[0]!, mastered).catch(() => undefined);
            return now?.every((m) => m !== undefined && m !== node.nodeId) ?? false;
          },
          { timeoutMs: 90_000, intervalMs: 500, what: `the dots of node ${node.index} (${mastered.join(', ')}) to fail over` },
        );
      } finally {
        for (const dev of node.host.devices) await node.host.exec('ip', ['link', 'set', dev, 'up']);
      }
      const failedOver = Date.now() - started;
      await node.start();
      return `node ${node.index}'s host gone (links down, server killed): ${mastered.length} dot(s) failed over in ${failedOver} ms; the host came back`;
    }
    case 'partition': {
      const host = t.bystander.host;
      const ms = 2000 + Math.floor(t.random() * 3000);
      for (const dev of host.devices) await host.exec('ip', ['link', 'set', dev, 'down']);
      try {
        await sleep(ms);
      } finally {
        for (const dev of host.devices) await host.exec('ip', ['link', 'set', dev, 'up']);
      }
      return `node ${t.bystander.index} cut off for ${ms} ms, healed`;
    }
  }
}

/**
 * The master node ids `via` lists for `dots`. A List may fail for a moment while a branch moves
 * (seen: BRANCH_NOT_FOUND from a node right after a failover): asked again for up to 30 s.
 */
async function mastersOf(via: DotmeshNode, dots: readonly string[]): Promise<(string | undefined)[]> {
  let masters: (string | undefined)[] = [];
  await waitFor(
    async () => {
      masters = await Promise.all(dots.map((d) => listedMaster(via, d)));
      return true;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: `node ${via.index} to list the masters of ${dots.join(', ')}` },
  );
  return masters;
}

/** A small seeded generator (mulberry32): a failing schedule can be run again with its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
