import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireFlock } from '../flock.ts';
import { TEST_NETWORK } from '../hosts.ts';
import { type NetnsCommands, netnsCommands } from '../netns.ts';
import { runCommand } from '../process.ts';
import { HOST_REGISTRY_DIR } from './host-state.ts';

/**
 * The test cluster's network: a Linux bridge in the root namespace holding the control plane's
 * address, and one network namespace per node joined to it by a veth pair. Nothing has a
 * default route towards the bridge, and the node namespaces have none at all, so nothing a node
 * or pod sends can leave the machine.
 *
 * Addresses: one private /16, 10.<b>.0.0/16, per cluster, with b chosen (under a machine-wide
 * flock) so that no route or address of the root namespace overlaps it and it is not testkit's
 * TEST_NETWORK (10.200.0.0/16):
 * - 10.<b>.0.1/24 on the bridge (API server, etcd clients stay on 127.0.0.1), node i 10.<b>.0.<11+i>
 * - node i's pods 10.<b>.<32+i>.0/24 (clusterCidr 10.<b>.32.0/19), reached from the root namespace
 *   and the other nodes through routes via the node's address
 * - Services 10.<b>.128.0/20 (the API server's --service-cluster-ip-range): routed from the
 *   nodes to the bridge address (kube-proxy translates them on the way), and `unreachable` in
 *   the root namespace, so an address kube-proxy does not know ends there
 *
 * The routes to the node and pod addresses go through the bridge the kit made: callers check it
 * with `routeCheckRoot` before a root-namespace process connects there.
 */
export interface NodeNetwork extends NetnsCommands {
  readonly name: string;
  readonly netns: string;
  readonly netnsPath: string;
  readonly ip: string;
  readonly podCidr: string;
  /** The veth end on the bridge, in the root namespace. */
  readonly hostVeth: string;
}

export interface ClusterNetwork {
  readonly bridge: string;
  /** The bridge's address: the control plane listens here. */
  readonly gateway: string;
  readonly clusterCidr: string;
  readonly serviceCidr: string;
  /** The first address of serviceCidr (the `kubernetes` Service). */
  readonly apiServiceIP: string;
  /** Routes added to the root namespace that are not through the bridge (`ip route del` args). */
  readonly rootRoutes: readonly (readonly string[])[];
  readonly nodes: readonly NodeNetwork[];
}

/** Names chosen before anything is created, so a crashed cluster's leftovers can be found. */
export interface NetworkNames {
  readonly bridge: string;
  readonly nodes: readonly { readonly name: string; readonly netns: string; readonly hostVeth: string }[];
}

const IFNAMSIZ = 15;

export function networkNames(tag: string, nodeNames: readonly string[], netnsPrefix: string): NetworkNames {
  const bridge = `${netnsPrefix}k${tag}b`;
  const nodes = nodeNames.map((name, i) => nodeNetworkNames({ bridge }, name, i));
  for (const n of [bridge, ...nodes.map((x) => x.hostVeth)]) {
    if (n.length > IFNAMSIZ)
      throw new Error(`interface name ${n} is longer than ${IFNAMSIZ} bytes: use a shorter DOTMESH_TEST_NETNS_PREFIX`);
  }
  return { bridge, nodes };
}

/**
 * A cluster has at most this many nodes over its life (node i's pods are 10.<b>.<32+i>.0/24, in
 * 10.<b>.32.0/19): the run's shared cluster adds nodes for the operator, pvcPerNode and
 * replace-all suites (each recycles its own nodes onto replacements) besides its three.
 */
export const MAX_CLUSTER_NODES = 32;

/** The name of the cluster's node of index i (indexes are never reused: an added node gets the next). */
export function clusterNodeName(i: number): string {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_CLUSTER_NODES)
    throw new Error(`a test cluster has nodes 0 to ${MAX_CLUSTER_NODES - 1} over its life, not ${i}`);
  return `node-${i}`;
}

/** The namespace and veth names of node `index` of the cluster whose bridge is `names.bridge`. */
export function nodeNetworkNames(
  names: Pick<NetworkNames, 'bridge'>,
  name: string,
  index: number,
): NetworkNames['nodes'][number] {
  const base = names.bridge.slice(0, -1); // `<prefix>k<tag>`
  return { name, netns: `${base}n${index}`, hostVeth: `${base}v${index}` };
}

/** Node i's address and pod range in the cluster 10.<b>.0.0/16. */
export function nodeAddresses(b: number, i: number): { ip: string; podCidr: string } {
  clusterNodeName(i);
  return { ip: `10.${b}.0.${11 + i}`, podCidr: `10.${b}.${32 + i}.0/24` };
}

/** The b of a cluster's 10.<b>.0.0/16, from its bridge address. */
export function secondOctetOf(gateway: string): number {
  const b = Number(gateway.split('.')[1]);
  if (!/^10\.\d+\.0\.1$/.test(gateway) || b < 1 || b > 254) throw new Error(`${gateway} is no test cluster bridge address`);
  return b;
}

interface RouteJson {
  readonly dst?: string;
  readonly dev?: string;
  readonly type?: string;
  readonly gateway?: string;
}

/** True when 10.<b>.0.0/16 overlaps a route or address the root namespace has. */
async function secondOctetInUse(b: number): Promise<boolean> {
  const { stdout: routes } = await runCommand('ip', ['-4', '-j', 'route', 'show', 'table', 'all']);
  const { stdout: addrs } = await runCommand('ip', ['-4', '-j', 'addr']);
  const overlaps = (cidr: string) => {
    if (cidr === 'default') return false;
    const [addr, len = '32'] = cidr.split('/');
    const parts = (addr ?? '').split('.').map(Number);
    if (parts[0] !== 10) return false;
    return Number(len) < 16 || parts[1] === b;
  };
  const routeHit = (JSON.parse(routes) as RouteJson[]).some((r) => r.dst !== undefined && overlaps(r.dst));
  const addrHit = (JSON.parse(addrs) as { addr_info?: { local?: string }[] }[]).some((l) =>
    (l.addr_info ?? []).some((a) => a.local !== undefined && overlaps(`${a.local}/32`)),
  );
  return routeHit || addrHit;
}

async function chooseSecondOctet(seed: string): Promise<number> {
  const testOctet = Number(TEST_NETWORK.base.split('.')[1]);
  const start = createHash('sha256').update(seed).digest()[0]! % 50;
  for (let k = 0; k < 50; k++) {
    const b = 201 + ((start + k) % 50); // 10.201 .. 10.250
    if (b === testOctet) continue;
    if (!(await secondOctetInUse(b))) return b;
  }
  throw new Error('no free 10.<b>.0.0/16 (b in 201..250) for a test cluster: every one overlaps a route of the root namespace');
}

/** Creates the bridge, the node namespaces and veths, addresses and routes (teardown.ts removes them). */
export async function createClusterNetwork(o: { names: NetworkNames; seed: string }): Promise<ClusterNetwork> {
  const { names } = o;
  await mkdir(HOST_REGISTRY_DIR, { recursive: true });
  const release = await acquireFlock(join(HOST_REGISTRY_DIR, 'k8s-net.lock'), 60_000);
  let b: number;
  try {
    b = await chooseSecondOctet(o.seed);
    await runCommand('ip', ['link', 'add', names.bridge, 'type', 'bridge']);
    await runCommand('ip', ['addr', 'add', `10.${b}.0.1/24`, 'dev', names.bridge]);
    await runCommand('ip', ['link', 'set', names.bridge, 'up']);
    // Service addresses that kube-proxy does not translate end here, not on the default route.
    await runCommand('ip', ['route', 'add', 'unreachable', serviceCidr(b)]);
  } finally {
    await release();
  }
  const nodes: NodeNetwork[] = [];
  for (const [i, n] of names.nodes.entries()) nodes.push(await createNodeNamespace(names.bridge, b, i, n));
  for (const node of nodes) {
    await joinNodeRoutes(
      node,
      b,
      nodes.filter((other) => other !== node),
    );
  }
  const net: ClusterNetwork = {
    bridge: names.bridge,
    gateway: `10.${b}.0.1`,
    clusterCidr: `10.${b}.32.0/19`,
    serviceCidr: serviceCidr(b),
    rootRoutes: [['unreachable', serviceCidr(b)]],
    apiServiceIP: `10.${b}.128.1`,
    nodes,
  };
  for (const node of nodes) await routeCheckRoot(net, node.ip);
  return net;
}

const serviceCidr = (b: number) => `10.${b}.128.0/20`;

/**
 * Node `index`'s namespace, joined to the bridge by its veth, with its address and the root
 * namespace's route to its pods (via its address); forwarding on in the namespace.
 */
async function createNodeNamespace(
  bridge: string,
  b: number,
  index: number,
  n: NetworkNames['nodes'][number],
): Promise<NodeNetwork> {
  const { ip, podCidr } = nodeAddresses(b, index);
  await runCommand('ip', ['netns', 'add', n.netns]);
  const ipn = (args: string[]) => runCommand('ip', ['-n', n.netns, ...args]);
  await ipn(['link', 'set', 'lo', 'up']);
  await runCommand('ip', ['link', 'add', n.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns]);
  await runCommand('ip', ['link', 'set', n.hostVeth, 'master', bridge, 'up']);
  await ipn(['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  await ipn(['link', 'set', 'eth0', 'up']);
  await runCommand('ip', ['route', 'add', podCidr, 'via', ip, 'dev', bridge]);
  const node = nodeNetwork(n.name, n.netns, ip, podCidr, n.hostVeth);
  // A node forwards between its pods' bridge and its veth; the setting is the namespace's own.
  await node.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  return node;
}

/**
 * Routes inside `node`'s namespace: the Service range to the bridge address (so that a
 * connection from the node itself, hostNetwork pods, gets as far as kube-proxy's OUTPUT
 * rules) and every other node's pods via that node.
 */
async function joinNodeRoutes(node: NodeNetwork, b: number, others: readonly NodeNetwork[]): Promise<void> {
  await runCommand('ip', ['-n', node.netns, 'route', 'add', serviceCidr(b), 'via', `10.${b}.0.1`, 'dev', 'eth0']);
  for (const other of others)
    await runCommand('ip', ['-n', node.netns, 'route', 'add', other.podCidr, 'via', other.ip, 'dev', 'eth0']);
}

/**
 * A node added to a running cluster's network (see added-nodes.ts): its namespace and veth,
 * its routes, and a route to its pods in each of `others`' namespaces. teardown.ts's
 * teardownNode undoes it.
 */
export async function addNodeNetwork(o: {
  readonly bridge: string;
  readonly gateway: string;
  readonly index: number;
  readonly names: NetworkNames['nodes'][number];
  readonly others: readonly NodeNetwork[];
}): Promise<NodeNetwork> {
  const b = secondOctetOf(o.gateway);
  const node = await createNodeNamespace(o.bridge, b, o.index, o.names);
  await joinNodeRoutes(node, b, o.others);
  for (const other of o.others)
    await runCommand('ip', ['-n', other.netns, 'route', 'add', node.podCidr, 'via', node.ip, 'dev', 'eth0']);
  await routeCheckRoot({ gateway: o.gateway, bridge: o.bridge }, node.ip);
  return node;
}

/** The NodeNetwork of a node whose namespace exists (a cluster's node, by its recorded names). */
export function existingNodeNetwork(n: {
  name: string;
  netns: string;
  ip: string;
  podCidr: string;
  hostVeth: string;
}): NodeNetwork {
  return nodeNetwork(n.name, n.netns, n.ip, n.podCidr, n.hostVeth);
}

function nodeNetwork(name: string, netns: string, ip: string, podCidr: string, hostVeth: string): NodeNetwork {
  const netnsPath = `/run/netns/${netns}`;
  return { name, netns, netnsPath, ip, podCidr, hostVeth, ...netnsCommands(netnsPath) };
}

/**
 * Throws unless the root namespace reaches `address` through the cluster's bridge (a node or
 * pod address) or locally (the bridge's own address), never through another interface.
 */
export async function routeCheckRoot(net: Pick<ClusterNetwork, 'gateway' | 'bridge'>, address: string): Promise<void> {
  const { stdout } = await runCommand('ip', ['-j', 'route', 'get', address]);
  const r = (JSON.parse(stdout) as RouteJson[])[0];
  if (r?.type === 'local' && address === net.gateway) return;
  if (r?.dev === net.bridge) return;
  throw new Error(
    `route check: the root namespace reaches ${address} by ${JSON.stringify(r)}, not through the test bridge ${net.bridge}`,
  );
}
