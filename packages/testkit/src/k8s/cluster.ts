import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Cleanup } from '../cleanup.ts';
import { netnsCommands, netnsPrefix } from '../netns.ts';
import { waitFor } from '../process.ts';
import { makeTempDir, removeTempDir } from '../tmp.ts';
import { type ControlPlaneOptions, startControlPlane } from './control-plane.ts';
import { registerHostUser } from './host-state.ts';
import { busyboxImage, type ImageOptions, pauseImage, serverBaseImage, type TestImage } from './images.ts';
import { type Kubectl, kubectlRunner, nodeStatus } from './kubectl.ts';
import { startKubelet, startKubeProxy } from './kubelet.ts';
import { clusterNodeName, createClusterNetwork, MAX_CLUSTER_NODES, networkNames, routeCheckRoot } from './network.ts';
import { importImages, type NodePaths, nodePaths, startContainerd } from './node.ts';
import { makeClusterPki } from './pki.ts';
import { type ComponentProcess, componentLauncher, logTail } from './process-log.ts';
import { CLUSTER_STATE_FILE, type ClusterState, readClusterState, teardownCluster, writeClusterState } from './teardown.ts';
import { findK8sTools, type K8sTools, readManifest } from './tools.ts';

/**
 * A real Kubernetes cluster for tests (see docs/kubernetes.md, "The test cluster"): the control
 * plane in the root network namespace on a bridge address, and N nodes (default 3), each a
 * kubelet and kube-proxy with its own containerd in its own network namespace. Plain data (`TestClusterInfo`)
 * so that another process can use a cluster it did not start (the shared cluster, shared.ts).
 */
export interface TestClusterNode {
  readonly name: string;
  /** The node's InternalIP (its namespace's address on the bridge). */
  readonly ip: string;
  readonly netns: string;
  readonly netnsPath: string;
  readonly podCidr: string;
  readonly paths: NodePaths;
}

export interface TestClusterInfo {
  readonly id: string;
  readonly dir: string;
  readonly apiServerUrl: string;
  /** The bridge address (control plane), reached from the nodes through their veths. */
  readonly apiServerAddress: string;
  readonly apiServerPort: number;
  readonly caFile: string;
  readonly adminToken: string;
  readonly adminKubeconfig: string;
  readonly bridge: string;
  readonly serviceCidr: string;
  readonly clusterCidr: string;
  readonly nodes: readonly TestClusterNode[];
  readonly images: { readonly pause: TestImage; readonly busybox: TestImage; readonly serverBase: TestImage };
  readonly toolsDir: string;
  /** The kubelets' port on their node address and healthz port on 127.0.0.1 (nodes added later too). */
  readonly kubeletPorts: { readonly kubelet: number; readonly healthz: number };
  /** Milliseconds from start to every node Ready, and the phases. */
  readonly timings: Readonly<Record<string, number>>;
}

export interface TestCluster extends TestClusterInfo {
  readonly tools: K8sTools;
  /** The tools' kubectl as the cluster admin. */
  readonly kubectl: Kubectl;
}

export interface OwnedTestCluster extends TestCluster {
  /** Stops everything and undoes every host change (see teardown.ts); idempotent. */
  stop(): Promise<void>;
}

export const CLUSTER_INFO_FILE = 'cluster.json';

export function clusterHandle(info: TestClusterInfo): TestCluster {
  const tools = readManifest(info.toolsDir);
  return { ...info, tools, kubectl: kubectlRunner(tools.bin('kubectl'), info.adminKubeconfig) };
}

export interface StartTestClusterOptions {
  /** `stop()` is registered here (it also runs when the start fails). */
  readonly cleanup: Cleanup;
  readonly nodes?: number;
  readonly images?: ImageOptions;
  readonly log?: (s: string) => void;
  /** The kubelets' port on their node address, and their healthz port on 127.0.0.1 (per namespace). */
  readonly kubeletPort?: number;
  readonly kubeletHealthzPort?: number;
  /** Fixed control-plane ports (default: free ones). */
  readonly controlPlanePorts?: ControlPlaneOptions['ports'];
  /** Called with the cluster's directory once its cluster-state.json is written. */
  readonly onStateWritten?: (dir: string) => unknown;
}

export async function startTestCluster(o: StartTestClusterOptions): Promise<OwnedTestCluster> {
  const log = o.log ?? (() => {});
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const mark = (what: string, since: number) => {
    timings[what] = Date.now() - since;
    log(`${what}: ${timings[what]} ms`);
  };
  const found = findK8sTools();
  if (!found.ok) throw new Error(found.reason);
  const tools = found.tools;

  // Everything is named before anything is made, and written down for teardownCluster.
  const dir = await makeTempDir('k8s');
  const id = `${netnsPrefix()}k${randomBytes(2).toString('hex').slice(0, 3)}`;
  const count = o.nodes ?? 3;
  // Node i's pods are 10.<b>.<32+i>.0/24, inside the cluster CIDR 10.<b>.32.0/19.
  if (!Number.isInteger(count) || count < 1 || count > MAX_CLUSTER_NODES)
    throw new Error(`a test cluster has 1 to ${MAX_CLUSTER_NODES} nodes, not ${count}`);
  const nodeNames = Array.from({ length: count }, (_, i) => clusterNodeName(i));
  const names = networkNames(id.slice(netnsPrefix().length + 1), nodeNames, netnsPrefix());
  const paths = nodeNames.map((n) => nodePaths(dir, id, n));
  const state: ClusterState = { id, dir, network: names, nodes: paths, nextNodeIndex: count };
  let current = state;
  const writeState = async (s: ClusterState) => {
    current = s;
    await writeClusterState(s);
  };
  await writeState(state);
  await o.onStateWritten?.(dir);
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      const s = Date.now();
      // The file, not `current`: nodes added later (added-nodes.ts, perhaps by another process) are there.
      await teardownCluster(existsSync(join(dir, CLUSTER_STATE_FILE)) ? readClusterState(dir) : current);
      await removeTempDir(dir);
      log(`stopped in ${Date.now() - s} ms`);
    })();
    return stopped;
  };
  o.cleanup.add(stop, `stop test cluster ${id}`);

  const logDir = join(dir, 'logs');
  await mkdir(logDir);
  const launch = componentLauncher({ logDir });
  await registerHostUser(id, dir);

  let t = Date.now();
  const [net, images] = await Promise.all([
    createClusterNetwork({ names, seed: `${id}:${process.pid}` }),
    (async () => {
      const s = Date.now();
      const imageOpts = { ...o.images, log };
      const built = {
        pause: await pauseImage(tools, imageOpts),
        busybox: await busyboxImage(imageOpts),
        serverBase: await serverBaseImage(imageOpts),
      };
      mark('images ready (cached or built)', s);
      return built;
    })(),
  ]);
  mark('network (and images)', t);
  await writeState({ ...state, rootRoutes: net.rootRoutes, gateway: net.gateway });
  t = Date.now();
  const pki = await makeClusterPki({
    dir: join(dir, 'pki'),
    apiServerIPs: [net.gateway, net.apiServiceIP],
    nodes: net.nodes.map((n) => ({ name: n.name, ip: n.ip })),
  });
  mark('certificates', t);

  t = Date.now();
  const nodesUp = Promise.all(
    net.nodes.map(async (n, i) => {
      await startContainerd({ paths: paths[i]!, net: n, sandboxImage: images.pause.ref, launch });
      await importImages(paths[i]!, [images.pause, images.busybox, images.serverBase]);
    }),
  ).then(() => mark('containerd started and images imported on every node', t));
  nodesUp.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
  const cp = await startControlPlane({
    tools,
    pki,
    dir: join(dir, 'control-plane'),
    address: net.gateway,
    serviceCidr: net.serviceCidr,
    clusterCidr: net.clusterCidr,
    launch,
    ...(o.controlPlanePorts ? { ports: o.controlPlanePorts } : {}),
  });
  mark('control plane', t);
  await nodesUp;

  t = Date.now();
  const kubeletPorts = { kubelet: o.kubeletPort ?? 10250, healthz: o.kubeletHealthzPort ?? 10248 };
  const kubelets: ComponentProcess[] = [];
  for (const [i, n] of net.nodes.entries()) {
    await routeCheckRoot(net, n.ip);
    const kubelet = await startKubelet({
      tools,
      paths: paths[i]!,
      net: n,
      pki,
      apiServerUrl: cp.apiServerUrl,
      launch,
      ports: kubeletPorts,
    });
    kubelets.push(kubelet);
  }
  const kubectl = kubectlRunner(tools.bin('kubectl'), cp.adminKubeconfig);
  await waitFor(
    async () => {
      const status = await nodeStatus(kubectl);
      return net.nodes.every((n) => status.get(n.name)?.ready === true);
    },
    { timeoutMs: 120_000, intervalMs: 500, what: `nodes ${nodeNames.join(', ')} to be Ready` },
  ).catch((e: Error) => {
    const tails = kubelets.map((k) => `--- ${k.logFile} (tail) ---\n${logTail(k, 2000)}`).join('\n');
    throw new Error(`${e.message}\n${tails}`, { cause: e });
  });
  await Promise.all(
    net.nodes.map((n, i) =>
      startKubeProxy({
        tools,
        paths: paths[i]!,
        net: n,
        pki,
        apiServerUrl: cp.apiServerUrl,
        clusterCidr: net.clusterCidr,
        launch,
      }),
    ),
  );
  // Pods are refused until the service-account controller made `default` in their namespace.
  await waitFor(() => kubectl(['get', 'serviceaccount', 'default', '-n', 'default']).then(() => true), {
    timeoutMs: 60_000,
    what: 'the default service account',
  });
  mark('kubelets ready, kube-proxy synced', t);
  timings.total = Date.now() - t0;
  log(`cluster ${id} ready in ${timings.total} ms`);

  const info: TestClusterInfo = {
    id,
    dir,
    apiServerUrl: cp.apiServerUrl,
    apiServerAddress: net.gateway,
    apiServerPort: cp.apiServerPort,
    caFile: pki.caCert,
    adminToken: pki.adminToken,
    adminKubeconfig: cp.adminKubeconfig,
    bridge: net.bridge,
    serviceCidr: net.serviceCidr,
    clusterCidr: net.clusterCidr,
    nodes: net.nodes.map((n, i) => ({
      name: n.name,
      ip: n.ip,
      netns: n.netns,
      netnsPath: n.netnsPath,
      podCidr: n.podCidr,
      paths: paths[i]!,
    })),
    images,
    toolsDir: tools.dir,
    kubeletPorts,
    timings,
  };
  await writeFile(join(dir, `${CLUSTER_INFO_FILE}.tmp`), JSON.stringify(info, null, 2));
  await rename(join(dir, `${CLUSTER_INFO_FILE}.tmp`), join(dir, CLUSTER_INFO_FILE));
  return { ...clusterHandle(info), stop };
}

/** Runs `cmd args` inside a node's network namespace (the node's own view: its address, 127.0.0.1). */
export function nodeExec(node: TestClusterNode, cmd: string, args: readonly string[], timeoutMs?: number) {
  return netnsCommands(node.netnsPath).exec(cmd, args, timeoutMs === undefined ? {} : { timeoutMs });
}

/** A private cluster whose cleanup is its own (for callers without a Cleanup stack). */
export async function startStandaloneCluster(o: Omit<StartTestClusterOptions, 'cleanup'> = {}): Promise<OwnedTestCluster> {
  const cleanup = new Cleanup();
  try {
    return await startTestCluster({ ...o, cleanup });
  } catch (e) {
    await cleanup.run().catch(() => {});
    throw e;
  }
}
