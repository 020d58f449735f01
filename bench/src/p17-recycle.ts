import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DotmeshClient } from '@dotmesh/rpc/client';
import {
  addClusterNode,
  Cleanup,
  deleteAndWait,
  deletePoolVolumes,
  installCloudVolumes,
  installDotmeshFromDoc,
  removeClusterNode,
  routeCheckRoot,
  startTestCluster,
  type TestCluster,
  type TestClusterNode,
  waitFor,
} from '@dotmesh/testkit';
import { alternate, ratio, summarize } from './harness.ts';
import { DIST, KUBERNETES_DOC } from './repo-paths.ts';
import type { Row } from './report.ts';

/**
 * P17 (issue 17, "Cloud Volumes v2"; not in the targets table, so informational): a node of a
 * `storageMode: pvcPerNode` cluster recycled in surge order (docs/kubernetes.md, "Surviving
 * node upgrades"), the time from its pool released to the replacement — the replacement Ready
 * and waiting, the old node drained (its disk detached) and its machine gone, the clock starts
 * at `kubectl delete node` — until its dots are served at the replacement's address: every
 * dot's commits listed there and its file read back with the same hash. The clock covers the
 * operator clearing the PVC's node and the replacement adopting it, the disk's attach and
 * mount, the server pod's start, the pool's claim (waiting for the old node's lease), the
 * certificates for the new address and the etcd member's move to it. On a one-node test
 * cluster of the bench's own (testkit's startTestCluster; the test-only cloud disks of
 * packages/cloud-csi, one zone; Dotmesh installed from docs/kubernetes.md), each sample
 * recycling the node the sample before made. Reference, in the same run on the same cluster:
 * the server pod deleted and made again on its node from the same PVC (no move), from the old
 * pod gone until the dots are served. Samples alternate which side goes first.
 */
const NS = 'dotmesh';
const SERVER_ROLE = 'dotmesh.io/role=dotmesh-server';
const ZONE = 'zone-a';
const WAIT_MS = 300_000;

export interface RecycleBenchOptions {
  /** Recycles and in-place restarts, each (at most 15 recycles: a test cluster has 16 node indexes). */
  readonly samples: number;
  /** Dots written and committed before the first sample (1 MiB each). */
  readonly dots: number;
  readonly log: (s: string) => void;
}

export async function benchRecycle(o: RecycleBenchOptions): Promise<Row[]> {
  if (o.samples < 1 || o.samples > 15) throw new Error(`P17 takes 1 to 15 samples, not ${o.samples}`);
  const local = new Cleanup();
  try {
    return await measure(local, o);
  } finally {
    await local.run();
  }
}

interface Dot {
  readonly name: string;
  readonly sha: string;
  readonly commits: string[];
}

async function measure(local: Cleanup, o: RecycleBenchOptions): Promise<Row[]> {
  const t0 = Date.now();
  const cluster = await startTestCluster({ cleanup: local, nodes: 1 });
  const cloud = await installCloudVolumes({ cluster, cleanup: local, zones: [ZONE], storageClass: 'p17-pool' });
  // The added nodes go after Dotmesh and the pools (LIFO), before the cloud driver.
  const added = new Cleanup();
  local.add(() => added.run(), 'remove the added nodes');
  o.log(`P17: one-node test cluster ${cluster.id} with cloud disks up in ${secs(t0)}`);
  const t1 = Date.now();
  const install = await installDotmeshFromDoc(cluster, local, {
    docFile: KUBERNETES_DOC,
    dist: DIST,
    config: { storageMode: 'pvcPerNode', 'pvcPerNode.storageClass': cloud.storageClass, 'pvcPerNode.pvSizePerNode': '1G' },
  });
  // Before the manifest goes, and the cloud driver with the nodes added.
  local.add(() => deletePoolVolumes(cluster, cloud.storageClass), 'delete the pool PVCs and their disks');
  const api = (node: TestClusterNode) =>
    new DotmeshClient({ url: `http://${node.ip}:32607/rpc`, user: 'admin', apiKey: install.apiKey, timeoutMs: 5000 });
  let node = cluster.nodes[0]!;
  await serverReady(cluster, node);
  await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, node.ip);
  o.log(`P17: Dotmesh (pvcPerNode) installed from docs/kubernetes.md and serving in ${secs(t1)}`);

  const dots: Dot[] = [];
  for (let i = 0; i < o.dots; i++) {
    const name = `p17-${i}-${randomBytes(3).toString('hex')}`;
    const data = randomBytes(1 << 20);
    const client = api(node);
    await writeFile(join(await client.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' }), 'data.bin'), data);
    await client.call('Commit', { Namespace: 'admin', Name: name, Branch: '', Message: 'before the recycle', Metadata: {} });
    const commits = (await client.call('Commits', { Namespace: 'admin', Name: name, Branch: '' })).map((c) => c.Id);
    dots.push({ name, sha: sha256(data), commits });
  }
  const { NodeId: nodeId } = await api(node).call('PoolInfo', {});

  /** Every dot served at `at`: its commits listed and its file read back (the same hash). */
  const served = async (at: TestClusterNode) => {
    const client = api(at);
    try {
      if ((await client.call('PoolInfo', {})).NodeId !== nodeId) return false;
      for (const dot of dots) {
        const commits = (await client.call('Commits', { Namespace: 'admin', Name: dot.name, Branch: '' })).map((c) => c.Id);
        if (commits.join() !== dot.commits.join()) return false;
        const path = await client.call('Procure', { Namespace: 'admin', Name: dot.name, Subdot: '' });
        if (sha256(await readFile(join(path, 'data.bin'))) !== dot.sha) return false;
      }
      return true;
    } catch {
      return false; // not serving yet
    }
  };
  const untilServed = async (at: TestClusterNode, since: number) => {
    await waitFor(() => served(at), { timeoutMs: WAIT_MS, intervalMs: 100, what: `the dots served by ${at.name}` });
    return Date.now() - since;
  };

  const recycle = async () => {
    const old = node;
    const t = Date.now();
    const fresh = await addClusterNode(cluster, { cleanup: added, images: install.images });
    await cloud.addNode(fresh, ZONE);
    await cluster.kubectl(['drain', old.name, '--ignore-daemonsets', '--delete-emptydir-data', '--force', '--timeout=300s'], {
      timeoutMs: 320_000,
    });
    await waitFor(async () => !(await attachedNodes(cluster)).includes(old.name), {
      timeoutMs: 180_000,
      intervalMs: 500,
      what: `the disk of ${old.name} detached`,
    });
    await removeClusterNode(cluster, old.name, { deleteNodeObject: false });
    await routeCheckRoot({ gateway: cluster.apiServerAddress, bridge: cluster.bridge }, fresh.ip);
    o.log(`P17: ${fresh.name} added, ${old.name} drained, detached and gone in ${secs(t)}`);
    const since = Date.now();
    await cluster.kubectl(['delete', 'node', old.name]);
    const ms = await untilServed(fresh, since);
    node = fresh;
    o.log(`P17: recycled ${old.name} → ${fresh.name}: dots served ${ms} ms after the Node's deletion`);
    return ms;
  };
  const restart = async () => {
    const pod = (await cluster.kubectl(['get', 'pods', '-n', NS, '-l', SERVER_ROLE, '-o', 'name'])).stdout.trim();
    await deleteAndWait(cluster, [pod, '-n', NS]);
    const ms = await untilServed(node, Date.now());
    o.log(`P17: ${pod} made again on ${node.name}: dots served ${ms} ms after the old pod was gone`);
    return ms;
  };

  const moved: number[] = [];
  const inPlace: number[] = [];
  for (let i = 0; i < o.samples; i++)
    await alternate(
      i,
      async () => moved.push(await recycle()),
      async () => inPlace.push(await restart()),
    );
  const figure = summarize(moved);
  const reference = summarize(inPlace);
  return [
    {
      id: 'P17',
      what: `pvcPerNode node recycled in surge order (${o.dots} dots of 1 MiB): old Node deleted → every dot's commits and bytes served by the replacement`,
      unit: 'ms',
      figure,
      reference: { what: 'its server pod made again in place from the same PVC: old pod gone → dots served', stats: reference },
      diff: figure.p50 - reference.p50,
      ratio: ratio(figure.p50, reference.p50),
      note: 'no target: informational (issue 17)',
    },
  ];
}

/** The nodes that cloud disks are attached to (VolumeAttachments). */
async function attachedNodes(cluster: TestCluster): Promise<string[]> {
  const { stdout } = await cluster.kubectl([
    'get',
    'volumeattachments',
    '-o',
    'jsonpath={range .items[*]}{.spec.nodeName}{"\\n"}{end}',
  ]);
  return stdout.split('\n').filter(Boolean);
}

async function serverReady(cluster: TestCluster, node: TestClusterNode): Promise<void> {
  await waitFor(
    async () => {
      const { stdout } = await cluster.kubectl(['get', 'pods', '-n', NS, '-l', SERVER_ROLE, '-o', 'json']);
      const pods = (JSON.parse(stdout) as { items: ServerPod[] }).items;
      return pods.some(
        (p) =>
          p.spec?.nodeName === node.name &&
          !p.metadata.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true,
      );
    },
    { timeoutMs: 600_000, intervalMs: 1000, what: `a Ready server pod on ${node.name}` },
  );
}

interface ServerPod {
  readonly metadata: { readonly deletionTimestamp?: string };
  readonly spec?: { readonly nodeName?: string };
  readonly status?: { readonly conditions?: readonly { readonly type: string; readonly status: string }[] };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function secs(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
