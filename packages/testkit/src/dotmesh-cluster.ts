import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DotmeshClient } from '@dotmesh/rpc';
import type { Cleanup } from './cleanup.ts';
import { type DmResult, runDmIn } from './dm.ts';
import { type NetnsEtcd, startEtcdIn } from './etcd-netns.ts';
import { createHosts, type TestHost } from './hosts.ts';
import { CurlClients } from './netns-curl.ts';
import { freePorts } from './ports.ts';
import { SERVER_BUNDLE, type ServerProcess, startServerProcess } from './server-process.ts';
import { makeTestCa, type TestCa } from './test-ca.ts';
import { makeTempDir } from './tmp.ts';

/**
 * A Dotmesh cluster of several nodes for end-to-end tests: each node is a test host (a network
 * namespace, see hosts.ts) running the built `dotmesh-server` on its own loop-file btrfs pool;
 * all share one real etcd (etcd-netns.ts: its own host, etcd's default limits). The first node
 * is given the test cluster CA (copied into its `<state dir>/tls/`, so tests can sign forged
 * certificates) and the store's address; every other node of the cluster joins through it
 * with a join token and the CA's pin, as `dm cluster join` sets a node up (the token file and
 * `join` in its config: the server joins at its first start and learns the store from the
 * cluster). Each node's config names its node-to-node endpoint (`clusterPort`,
 * `advertiseAddress` = its host's address) and its lease TTL.
 *
 * Clients run inside the hosts: `admin`/`client()` with curl (CurlClients), `dm` with runDmIn
 * and a HOME whose remote `local` (current) is that node. Everything — processes, pools, loop
 * devices, namespaces, files — is removed by `cleanup`, also when a start fails half-way.
 */
export interface DotmeshNode {
  readonly index: number;
  readonly host: TestHost;
  /** The pool and state directory (`<dir>/server/` holds the config, log and TLS files). */
  readonly dir: string;
  readonly configFile: string;
  /** This node's id (its pool's id). */
  readonly nodeId: string;
  /** The API URL (on the host's address). */
  readonly url: string;
  readonly apiKey: string;
  /** The node-to-node (mutual TLS) endpoint's port. */
  readonly clusterPort: number;
  /** The running (or last) server process of this node. */
  readonly process: ServerProcess;
  /** An admin client of this node, calling from inside its host. */
  readonly admin: DotmeshClient;
  client(user: string, secret: string): DotmeshClient;
  /** HOME of this node's `dm` (remote `local` → this node). */
  readonly home: string;
  /** The built dm inside this node's host with its HOME; never throws for an exit code. */
  dm(args: readonly string[], o?: { env?: Record<string, string> }): Promise<DmResult>;
  /** dm that must exit 0; returns stdout (fails with its output and the servers' log tails). */
  ok(args: readonly string[], o?: { env?: Record<string, string> }): Promise<string>;
  /** dm that must fail; returns stdout and stderr joined. */
  fails(args: readonly string[], o?: { env?: Record<string, string> }): Promise<string>;
  kill9(): Promise<void>;
  /** Graceful stop (SIGTERM). */
  stop(): Promise<void>;
  /** Starts the server again on the same pool, state and config (after kill9, stop or a crash). */
  start(): Promise<void>;
  /** Resolves when the current process exits (a crash failpoint). */
  exited(): Promise<number | null>;
  /** Merges `patch` into the server config file (takes effect at the next start). */
  configure(patch: Record<string, unknown>): Promise<void>;
  log(): Promise<string>;
}

export interface DotmeshTestCluster {
  readonly nodes: DotmeshNode[];
  readonly etcd: NetnsEtcd;
  /** The cluster CA every node's certificate is signed by (tests sign forged certificates with it). */
  readonly ca: TestCa;
  /** Every join token the further nodes joined with (secrets tests look for in what they leave). */
  readonly joinTokens: readonly string[];
  /** Hosts on the cluster's network that run no node (`spareHosts`). */
  readonly spares: TestHost[];
  readonly curl: CurlClients;
  /**
   * Starts one more node on `host` (default: a new pool on the next spare host). `etcdPrefix`
   * and `ca` other than the cluster's make a node of another cluster on the same etcd.
   */
  addNode(o: AddNodeOptions): Promise<DotmeshNode>;
  /** The tails of every node's log, for failure messages. */
  logs(chars?: number): Promise<string>;
}

export interface AddNodeOptions {
  readonly host: TestHost;
  readonly etcdPrefix?: string;
  readonly ca?: TestCa;
}

export interface StartDotmeshClusterOptions {
  readonly cleanup: Cleanup;
  readonly nodes: number;
  /** etcd members (default 1). */
  readonly etcdMembers?: number;
  /** Hosts on the same network without a node (default 0). */
  readonly spareHosts?: number;
  /** The nodes' lease TTL (default: the server's, 10 s). */
  readonly nodeLeaseTtlSeconds?: number;
  /** Each node's sparse pool file (default: startServerProcess's, 1G). */
  readonly poolSize?: string;
  /** More server config for every node. */
  readonly extraConfig?: Record<string, unknown>;
  /** The admin's API key and password (startServerProcess's defaults when absent). */
  readonly apiKey?: string;
  readonly password?: string;
}

/** Short transfer timings: a cut transfer is noticed in seconds, not minutes. */
export const CLUSTER_TEST_TIMING = { transferIdleTimeoutMs: 5000, transferAttempts: 3, transferBackoffMs: 200 } as const;

export async function startDotmeshCluster(o: StartDotmeshClusterOptions): Promise<DotmeshTestCluster> {
  const { cleanup } = o;
  const spareCount = o.spareHosts ?? 0;
  const hosts = await createHosts({ cleanup, count: o.nodes + spareCount + 1 });
  const etcdHost = hosts.at(-1)!;
  const caDir = await makeTempDir('cluster-ca', cleanup);
  const [etcd, ca] = await Promise.all([
    startEtcdIn({ cleanup, host: etcdHost, members: o.etcdMembers ?? 1 }),
    makeTestCa(caDir, 'dmtest dotmesh cluster CA'),
  ]);
  const curl = new CurlClients(cleanup);
  const nodes: DotmeshNode[] = [];
  const logs = async (chars = 6000) => {
    const parts = await Promise.all(
      nodes.map(async (n) => `--- node ${n.index} (${n.host.address}) log (tail) ---\n${(await n.log()).slice(-chars)}`),
    );
    return parts.join('\n');
  };
  const nodeOptions = {
    cleanup,
    etcd,
    credentials: {
      ...(o.apiKey === undefined ? {} : { apiKey: o.apiKey }),
      ...(o.password === undefined ? {} : { password: o.password }),
    },
    curl,
    logs,
    ...(o.poolSize === undefined ? {} : { poolSize: o.poolSize }),
    config: {
      ...CLUSTER_TEST_TIMING,
      ...(o.nodeLeaseTtlSeconds === undefined ? {} : { nodeLeaseTtlSeconds: o.nodeLeaseTtlSeconds }),
      ...o.extraConfig,
    },
  };
  // The first node is the cluster's (the test CA, the admin); the others join through it with a
  // token, as `dm cluster join` makes them (cluster/join-client.ts), all with one multi-use token.
  const [first, ...others] = hosts.slice(0, o.nodes);
  const joinTokens: string[] = [];
  const firstNode = await startNode({ ...nodeOptions, index: 0, host: first!, etcdPrefix: '', ca });
  nodes.push(firstNode);
  const joinToken = async (): Promise<JoinVia> => {
    const t = await firstNode.admin.call('CreateJoinToken', { TtlSeconds: 3600, Uses: 0, Description: 'testkit cluster' });
    joinTokens.push(t.Token);
    return { address: t.JoinAddress, caHash: t.CaHash, token: t.Token };
  };
  const via = others.length > 0 ? await joinToken() : undefined;
  const started = await Promise.all(
    others.map((host, i) => startNode({ ...nodeOptions, index: i + 1, host, etcdPrefix: '', ca, join: via })),
  );
  nodes.push(...started);
  const addNode = async (a: AddNodeOptions): Promise<DotmeshNode> => {
    const ofThisCluster = a.etcdPrefix === undefined && a.ca === undefined;
    const node = await startNode({
      ...nodeOptions,
      index: nodes.length,
      host: a.host,
      etcdPrefix: a.etcdPrefix ?? '',
      ca: a.ca ?? ca,
      ...(ofThisCluster ? { join: await joinToken() } : {}),
    });
    nodes.push(node);
    return node;
  };
  return { nodes, etcd, ca, joinTokens, spares: hosts.slice(o.nodes, o.nodes + spareCount), curl, addNode, logs };
}

interface StartNodeOptions {
  readonly cleanup: Cleanup;
  readonly index: number;
  readonly host: TestHost;
  readonly etcd: NetnsEtcd;
  readonly etcdPrefix: string;
  readonly ca: TestCa;
  readonly curl: CurlClients;
  readonly logs: (chars?: number) => Promise<string>;
  readonly config: Record<string, unknown>;
  readonly credentials: { readonly apiKey?: string; readonly password?: string };
  readonly poolSize?: string;
  /** Join the cluster through this node endpoint with this token (else: the CA is copied in). */
  readonly join?: JoinVia | undefined;
}

interface JoinVia {
  readonly address: string;
  readonly caHash: string;
  readonly token: string;
}

/** Copies a cluster CA where a node's server looks for it (`<state dir>/tls/ca.pem`, `ca-key.pem`). */
export async function installClusterCa(stateDir: string, ca: Pick<TestCa, 'caCert' | 'caKey'>): Promise<void> {
  const tls = join(stateDir, 'tls');
  await mkdir(tls, { recursive: true, mode: 0o700 });
  await copyFile(ca.caCert, join(tls, 'ca.pem'));
  await copyFile(ca.caKey, join(tls, 'ca-key.pem'));
}

async function startNode(o: StartNodeOptions): Promise<DotmeshNode> {
  const { cleanup, host } = o;
  const dir = await makeTempDir(`node${o.index}`, cleanup);
  const stateDir = join(dir, 'server');
  if (o.join) {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await writeFile(join(stateDir, 'join-token'), `${o.join.token}\n`, { mode: 0o600 });
  } else {
    await installClusterCa(stateDir, o.ca);
  }
  const [clusterPort] = (await freePorts(1)) as [number];
  let current = await startServerProcess({
    cleanup,
    dir,
    host,
    serverBin: SERVER_BUNDLE,
    ...(o.poolSize === undefined ? {} : { poolSize: o.poolSize }),
    ...(o.join ? {} : { etcd: { endpoints: o.etcd.endpoints, prefix: o.etcdPrefix } }),
    extraConfig: {
      clusterPort,
      advertiseAddress: host.address,
      ...(o.join ? { store: 'etcd', join: { address: o.join.address, caHash: o.join.caHash } } : {}),
      ...o.config,
    },
    ...o.credentials,
  });
  const admin = o.curl.client(host, current.url, 'admin', current.apiKey);
  const state = (await admin.call('DumpInternalState', 'myNodeId')) as Record<string, string>;
  const nodeId = state.myNodeId;
  if (nodeId === undefined) throw new Error(`node ${o.index} reports no myNodeId`);
  const home = await makeTempDir(`home${o.index}`, cleanup);
  const dm = (args: readonly string[], d: { env?: Record<string, string> } = {}) =>
    runDmIn(host, args, { home, timeoutMs: 120_000, ...(d.env ? { env: d.env } : {}) });
  const describe = (args: readonly string[], r: DmResult) =>
    `dm ${args.join(' ')} on node ${o.index} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  const node: DotmeshNode = {
    index: o.index,
    host,
    dir,
    configFile: current.configFile,
    nodeId,
    url: current.url,
    apiKey: current.apiKey,
    clusterPort,
    get process() {
      return current;
    },
    admin,
    client: (user, secret) => o.curl.client(host, current.url, user, secret),
    home,
    dm,
    async ok(args, d) {
      const r = await dm(args, d);
      if (r.code !== 0) throw new Error(`${describe(args, r)}\n${await o.logs()}`);
      return r.stdout;
    },
    async fails(args, d) {
      const r = await dm(args, d);
      if (r.code === 0) throw new Error(`expected a failure: ${describe(args, r)}`);
      return `${r.stdout}${r.stderr}`;
    },
    kill9: () => current.kill9(),
    stop: () => current.stop(),
    async start() {
      current = await current.restart();
    },
    exited: () => current.exited(),
    async configure(patch) {
      const config = JSON.parse(await readFile(current.configFile, 'utf8')) as Record<string, unknown>;
      await writeFile(current.configFile, JSON.stringify({ ...config, ...patch }));
    },
    log: () => current.log(),
  };
  await node.ok(['remote', 'add', 'local', `admin@${host.address}:${new URL(current.url).port}`], {
    env: { DOTMESH_PASSWORD: current.apiKey },
  });
  return node;
}
