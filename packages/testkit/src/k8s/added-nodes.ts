import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Cleanup } from '../cleanup.ts';
import { acquireFlock } from '../flock.ts';
import { listNetns } from '../netns.ts';
import { isAlive, runCommand, waitFor } from '../process.ts';
import type { TestCluster, TestClusterNode } from './cluster.ts';
import type { TestImage } from './images.ts';
import { nodeStatus } from './kubectl.ts';
import { startKubelet, startKubeProxy } from './kubelet.ts';
import {
  addNodeNetwork,
  clusterNodeName,
  existingNodeNetwork,
  type NodeNetwork,
  nodeAddresses,
  nodeNetworkNames,
  secondOctetOf,
} from './network.ts';
import { importImages, nodePaths, startContainerd } from './node.ts';
import { addedNodePki } from './pki.ts';
import { componentLauncher, logTail } from './process-log.ts';
import { CLUSTER_STATE_FILE, nodeProcessIds, readClusterState, stateNode, teardownNode, updateClusterState } from './teardown.ts';

/**
 * Nodes added to and removed from a running test cluster (a node recycled as a cloud's node
 * upgrade does it: a replacement added, the old one drained, deleted and gone). An added node
 * is made like the cluster's first ones (its own network namespace, containerd, kubelet and
 * kube-proxy, the cluster's base images imported) and gets the next node index, never one used
 * before (`node-3`, `node-4`…; at most 32 over the cluster's life). It is written to the
 * cluster's `cluster-state.json` before anything of it is made, so the cluster's teardown (its
 * owner's `stop()`, the shared cluster's daemon, `clean-test-leftovers`) removes it too if the
 * test that added it dies. It is not added to the cluster's `nodes` (other tests keep seeing
 * the nodes they know): the test keeps the handle it got.
 */
export interface AddClusterNodeOptions {
  /** The node's removal is registered here (a no-op once it was removed). */
  readonly cleanup: Cleanup;
  /** Images to import beside the cluster's base ones (the product's, for an installed Dotmesh). */
  readonly images?: readonly TestImage[];
  /** Node labels the kubelet registers with (beside `dotmesh.test/node=<name>`). */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * The kubelet starts, and so the Node registers, only once this resolves: the node's network,
   * containerd and images are made meanwhile (a replacement made ahead of the moment it may
   * join). Rejected: the node is not started (its removal is registered already).
   */
  readonly joinAfter?: Promise<unknown>;
}

const IFNAMSIZ = 15;
const NETWORK_LOCK_FILE = 'added-nodes.lock';

export async function addClusterNode(cluster: TestCluster, o: AddClusterNodeOptions): Promise<TestClusterNode> {
  const reserved = await updateClusterState(cluster.dir, (s) => {
    const index = s.nextNodeIndex ?? s.nodes.length;
    const name = clusterNodeName(index);
    const names = nodeNetworkNames(s.network, name, index);
    if (names.hostVeth.length > IFNAMSIZ)
      throw new Error(
        `interface name ${names.hostVeth} is longer than ${IFNAMSIZ} bytes: use a shorter DOTMESH_TEST_NETNS_PREFIX`,
      );
    const paths = nodePaths(s.dir, s.id, name);
    return {
      state: {
        ...s,
        nextNodeIndex: index + 1,
        network: { ...s.network, nodes: [...s.network.nodes, names] },
        nodes: [...s.nodes, paths],
      },
      result: { index, name, names, paths },
    };
  });
  const { index, name, names, paths } = reserved;
  o.cleanup.add(() => removeClusterNode(cluster, name), `remove the added test cluster node ${name}`);
  // One node's network at a time: each routes to the pods of the nodes whose namespace exists,
  // and they to its pods (a node reserved meanwhile does both for itself when its turn comes).
  const release = await acquireFlock(join(cluster.dir, NETWORK_LOCK_FILE), 120_000);
  let net: NodeNetwork;
  try {
    const state = readClusterState(cluster.dir);
    const b = secondOctetOf(cluster.apiServerAddress);
    const others = state.network.nodes
      .filter((n) => n.name !== name && listNetns(n.netns).includes(n.netns))
      .map((n) => {
        const at = stateNode(state, n.name);
        if (!at) throw new Error(`the state of test cluster ${cluster.id} lacks the paths of node ${n.name}`);
        return existingNodeNetwork({ ...n, ...nodeAddresses(b, at.index) });
      });
    net = await addNodeNetwork({ bridge: cluster.bridge, gateway: cluster.apiServerAddress, index, names, others });
  } finally {
    await release();
  }
  // Its processes outlive this call (and, unreferenced, never hold the test's event loop):
  // the removal stops them, by the paths in their command lines.
  const launcher = componentLauncher({ logDir: join(cluster.dir, 'logs') });
  const launch: typeof launcher = (...args) => {
    const p = launcher(...args);
    p.child.unref();
    return p;
  };
  await startContainerd({ paths, net, sandboxImage: cluster.images.pause.ref, launch });
  const { pause, busybox, serverBase } = cluster.images;
  await importImages(paths, [pause, busybox, serverBase, ...(o.images ?? [])]);
  if (o.joinAfter) await o.joinAfter;
  const pki = await addedNodePki(join(cluster.dir, 'pki'), { name, ip: net.ip });
  const kubelet = await startKubelet({
    tools: cluster.tools,
    paths,
    net,
    pki,
    apiServerUrl: cluster.apiServerUrl,
    launch,
    ports: cluster.kubeletPorts,
    ...(o.labels ? { labels: o.labels } : {}),
  });
  await waitFor(async () => (await nodeStatus(cluster.kubectl)).get(name)?.ready === true, {
    timeoutMs: 120_000,
    intervalMs: 500,
    what: `the added node ${name} to be Ready`,
  }).catch((e: Error) => {
    throw new Error(`${e.message}\n--- ${kubelet.logFile} (tail) ---\n${logTail(kubelet, 2000)}`, { cause: e });
  });
  await startKubeProxy({
    tools: cluster.tools,
    paths,
    net,
    pki,
    apiServerUrl: cluster.apiServerUrl,
    clusterCidr: cluster.clusterCidr,
    launch,
  });
  return { name, ip: net.ip, netns: net.netns, netnsPath: net.netnsPath, podCidr: net.podCidr, paths };
}

/**
 * Removes a node of the cluster as a deleted machine goes: its kubelet, containerd, kube-proxy
 * and pods stopped, its namespace, routes, cgroups and files gone (teardown.ts's teardownNode),
 * then its Node object deleted (unless `deleteNodeObject` is false). Idempotent: a node no
 * longer in the cluster's state is done already.
 */
export async function removeClusterNode(
  cluster: TestCluster,
  name: string,
  o: { readonly deleteNodeObject?: boolean } = {},
): Promise<void> {
  // The whole cluster gone (its teardown took the node with it): nothing left to do.
  if (!existsSync(join(cluster.dir, CLUSTER_STATE_FILE))) return;
  const state = readClusterState(cluster.dir);
  if (stateNode(state, name)) {
    await teardownNode(state, name);
    await updateClusterState(cluster.dir, (s) => ({
      state: {
        ...s,
        network: { ...s.network, nodes: s.network.nodes.filter((n) => n.name !== name) },
        nodes: s.nodes.filter((p) => p.dir !== join(s.dir, name)),
      },
      result: undefined,
    }));
  }
  if (o.deleteNodeObject !== false) await cluster.kubectl(['delete', 'node', name, '--ignore-not-found']);
}

/**
 * Loses an added node as a host vanishes (power gone, no clean stop): every process of it —
 * kubelet, kube-proxy, containerd, its shims and its pods' processes (a Dotmesh server pod's
 * too) — SIGKILLed by PID, rounds until none is left, and its link to the cluster's bridge set
 * down. Nothing is unmounted and its Node object stays (NotReady once the node lifecycle
 * controller notices): `removeClusterNode` removes what is left. Returns the PIDs killed.
 */
export async function loseClusterNode(cluster: TestCluster, name: string): Promise<number[]> {
  const state = readClusterState(cluster.dir);
  const node = stateNode(state, name);
  if (!node) throw new Error(`the test cluster ${cluster.id} has no node ${name}`);
  const killed: number[] = [];
  for (let round = 0; round < 20; round++) {
    const pids = nodeProcessIds(state, name);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        // gone meanwhile
      }
    }
    await waitFor(() => pids.every((pid) => !isAlive(pid)), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: `${name}'s processes to die`,
    });
  }
  const left = nodeProcessIds(state, name);
  if (left.length > 0) throw new Error(`node ${name} still has processes after SIGKILL: ${left.join(', ')}`);
  await runCommand('ip', ['link', 'set', node.network.hostVeth, 'down']);
  return killed;
}
