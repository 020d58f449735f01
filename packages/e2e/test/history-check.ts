import { existsSync } from 'node:fs';
import type { DotmeshNode, DotmeshTestCluster } from '@dotmesh/testkit';
import { committedFile, fileHash } from './cluster-helpers.ts';
import { type Acknowledged, DATA_FILE } from './history-clients.ts';

/**
 * The end of a history-checker run (cluster-history.test.ts), once every fault is healed: every
 * acknowledged commit must be listed on its dot's branch or on one of the dot's `-DIVERGED-`
 * branches, and its file must hold exactly what the client wrote (SHA-256) on every node whose
 * pool holds that commit; and no commit id of the written dots (acknowledged or not) has two
 * contents across the nodes. Pools are read directly (each commit's read-only snapshot).
 */
export interface HistoryReport {
  readonly acknowledged: number;
  /** Found on the dot's own branch / on a -DIVERGED- branch. */
  readonly onBranch: number;
  readonly onDiverged: number;
  /** Acknowledged commits listed nowhere. */
  readonly lost: readonly Acknowledged[];
  /** Acknowledged commits whose content is not what was written (node, expected, found). */
  readonly wrongContent: readonly string[];
  /** Commit ids whose file differs between nodes. */
  readonly twoContents: readonly string[];
  /** Commit ids of the written dots whose copies were compared, and the copies read. */
  readonly commitsCompared: number;
  readonly copiesRead: number;
}

interface Location {
  readonly branch: string;
  readonly fsId: string;
}

/** Every commit id of `dot`, on every branch (via `via`), with where it is listed. */
async function commitLocations(via: DotmeshNode, dot: string): Promise<Map<string, Location[]>> {
  const branches = ['', ...(await via.admin.call('Branches', { Namespace: 'admin', Name: dot }))];
  const out = new Map<string, Location[]>();
  for (const branch of branches) {
    const fsId = await via.admin.call('Lookup', { Namespace: 'admin', Name: dot, Branch: branch });
    for (const c of await via.admin.call('Commits', { Namespace: 'admin', Name: dot, Branch: branch })) {
      out.set(c.Id, [...(out.get(c.Id) ?? []), { branch, fsId }]);
    }
  }
  return out;
}

/** The content hashes of a commit's file on every node that holds it, by node index. */
async function copies(nodes: readonly DotmeshNode[], fsId: string, commitId: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const n of nodes) {
    const file = committedFile(n, fsId, commitId, DATA_FILE);
    if (existsSync(file)) out.set(n.index, await fileHash(file));
  }
  return out;
}

/** Whether every node's pool holds every acknowledged commit (replication settled). */
export async function replicatedEverywhere(cluster: DotmeshTestCluster, history: readonly Acknowledged[]): Promise<boolean> {
  const via = cluster.nodes[0]!;
  const byDot = new Map<string, Map<string, Location[]>>();
  for (const a of history) {
    if (!byDot.has(a.dot)) byDot.set(a.dot, await commitLocations(via, a.dot));
    const where = byDot.get(a.dot)!.get(a.commitId);
    if (!where) return false;
    const held = await copies(cluster.nodes, where[0]!.fsId, a.commitId);
    if (held.size < cluster.nodes.length) return false;
  }
  return true;
}

export async function checkHistory(
  cluster: DotmeshTestCluster,
  history: readonly Acknowledged[],
  dots: readonly string[],
): Promise<HistoryReport> {
  const via = cluster.nodes[0]!;
  const lost: Acknowledged[] = [];
  const wrongContent: string[] = [];
  const twoContents: string[] = [];
  let onBranch = 0;
  let onDiverged = 0;
  let commitsCompared = 0;
  let copiesRead = 0;
  const acked = new Map(history.map((a) => [a.commitId, a]));
  for (const dot of dots) {
    const locations = await commitLocations(via, dot);
    for (const [commitId, where] of locations) {
      const hashes = new Set<string>();
      let read = 0;
      for (const loc of where) {
        const held = await copies(cluster.nodes, loc.fsId, commitId);
        copiesRead += held.size;
        read += held.size;
        for (const [node, hash] of held) {
          hashes.add(hash);
          const a = acked.get(commitId);
          if (a && hash !== a.sha256) wrongContent.push(`${dot} ${commitId} on node ${node}: ${hash}, written ${a.sha256}`);
        }
      }
      if (read === 0 && acked.has(commitId)) wrongContent.push(`${dot} ${commitId}: listed, but no node's pool holds its files`);
      commitsCompared++;
      if (hashes.size > 1) twoContents.push(`${dot} ${commitId}: ${[...hashes].join(', ')}`);
    }
    for (const a of history.filter((h) => h.dot === dot)) {
      const where = locations.get(a.commitId);
      if (!where) lost.push(a);
      else if (where.some((l) => l.branch === '')) onBranch++;
      else if (where.some((l) => l.branch.includes('-DIVERGED-'))) onDiverged++;
      else lost.push(a);
    }
  }
  return {
    acknowledged: history.length,
    onBranch,
    onDiverged,
    lost,
    wrongContent,
    twoContents,
    commitsCompared,
    copiesRead,
  };
}
