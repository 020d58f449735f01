import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Cleanup,
  type DmResult,
  detachLoopDevicesUnder,
  freePorts,
  makeTempDir,
  routeCheck,
  runDmIn,
  SERVER_BUNDLE,
  type TestHost,
  unmountUnder,
} from '@dotmesh/testkit';

/**
 * A test host's node as `dm cluster init` or `dm cluster join` makes it (cluster-init.test.ts,
 * cluster-managed-etcd.test.ts): private dirs (HOME, pool dir, a Docker dir without a
 * dockerd), free ports for every listener (API, check, HTTPS, cluster, the managed etcd
 * member's client and peer ports), and `dm` inside the host. `nodeArgs()` are the node options
 * both commands take, the docs' defaults made private to the test. Cleanup resets the node
 * with `--destroy-data` (which stops its server and etcd member) and removes what is left.
 */
export interface HostNode {
  readonly host: TestHost;
  readonly home: string;
  readonly poolDir: string;
  readonly port: number;
  readonly clusterPort: number;
  /** The HTTPS API port. */
  readonly tlsPort: number;
  readonly etcdClientPort: number;
  /** The built dm on this host; `input` is its standard input (none: empty). */
  dm(args: readonly string[], env?: Record<string, string>, input?: string): Promise<DmResult>;
  /** dm that must exit 0 (fails the test with its output and the server's and etcd's log tails). */
  ok(args: readonly string[], env?: Record<string, string>, input?: string): Promise<string>;
  /** The options of this host's node (ports, paths), after `init` or `join ...`. */
  nodeArgs(): string[];
}

export async function makeHostNode(cleanup: Cleanup, host: TestHost, extraArgs: readonly string[] = []): Promise<HostNode> {
  const [poolDir, dockerDir] = await Promise.all([makeTempDir('pool', cleanup), makeTempDir('docker', cleanup)]);
  const ports = (await freePorts(6)) as unknown as HostNodePorts;
  return hostNodeOn(cleanup, host, { poolDir, dockerDir, ports, extraArgs });
}

/**
 * `node`'s pool dir served by another test host (a disk moved to a replacement machine): the
 * same pool dir, ports and options, this host's address, a HOME of its own.
 */
export async function moveHostNode(cleanup: Cleanup, node: HostNode, to: TestHost): Promise<HostNode> {
  const internals = INTERNALS.get(node);
  if (!internals) throw new Error('moveHostNode: not a node made by makeHostNode');
  return hostNodeOn(cleanup, to, { ...internals, poolDir: node.poolDir });
}

type HostNodePorts = [number, number, number, number, number, number];

interface HostNodeInternals {
  readonly dockerDir: string;
  readonly ports: HostNodePorts;
  readonly extraArgs: readonly string[];
}

const INTERNALS = new WeakMap<HostNode, HostNodeInternals>();

async function hostNodeOn(
  cleanup: Cleanup,
  host: TestHost,
  o: HostNodeInternals & { readonly poolDir: string },
): Promise<HostNode> {
  const { poolDir, dockerDir, extraArgs } = o;
  const home = await makeTempDir('home', cleanup);
  const [port, checkPort, tlsPort, clusterPort, etcdClientPort, etcdPeerPort] = o.ports;
  const dm = (args: readonly string[], env: Record<string, string> = {}, input?: string) =>
    runDmIn(host, args, { home, env, timeoutMs: 180_000, ...(input === undefined ? {} : { input }) });
  const ok = async (args: readonly string[], env: Record<string, string> = {}, input?: string) => {
    const r = await dm(args, env, input);
    if (r.code !== 0) {
      const tail = async (name: string) => (await readFile(join(poolDir, 'server', name), 'utf8').catch(() => '')).slice(-3000);
      assert.fail(
        `dm ${args.join(' ')} on ${host.address} exited ${r.code}\n${r.stdout}\n${r.stderr}\n${await tail('dotmesh-server.log')}\n--- etcd ---\n${await tail('etcd.log')}`,
      );
    }
    return r.stdout;
  };
  cleanup.add(async () => {
    await dm(['cluster', 'reset', '--use-pool-dir', poolDir, '--destroy-data', '--server-bin', SERVER_BUNDLE]);
    await unmountUnder(poolDir);
    await detachLoopDevicesUnder(poolDir);
  }, `reset the node on ${host.address}`);
  const node: HostNode = {
    host,
    home,
    poolDir,
    port,
    clusterPort,
    tlsPort,
    etcdClientPort,
    dm,
    ok,
    nodeArgs: () => [
      '--advertise-address',
      host.address,
      '--cluster-port',
      String(clusterPort),
      '--etcd-client-port',
      String(etcdClientPort),
      '--etcd-peer-port',
      String(etcdPeerPort),
      '--use-pool-dir',
      poolDir,
      '--pool-size',
      '1G',
      '--sparse',
      '--port',
      String(port),
      '--check-port',
      String(checkPort),
      '--tls-port',
      String(tlsPort),
      '--listen',
      host.address,
      '--no-systemd',
      '--server-bin',
      SERVER_BUNDLE,
      '--docker-plugin-socket',
      'none',
      '--docker-socket',
      join(dockerDir, 'no-docker.sock'),
      ...extraArgs,
    ],
  };
  INTERNALS.set(node, { dockerDir, ports: o.ports, extraArgs });
  return node;
}

export interface MemberJson {
  ID: number | string;
  name: string;
  peerURLs: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

/** etcdctl inside `n`'s host with `n`'s etcd certificate, against its own member unless `endpoints` are given. */
export async function etcdctl(n: HostNode, args: readonly string[], endpoints?: readonly string[]): Promise<string> {
  const urls = endpoints ?? [`https://${n.host.address}:${n.etcdClientPort}`];
  for (const u of urls) await routeCheck(n.host, new URL(u).hostname);
  const tls = join(n.poolDir, 'server', 'tls');
  const { stdout } = await n.host.exec(
    'etcdctl',
    [
      `--endpoints=${urls.join(',')}`,
      `--cacert=${join(tls, 'ca.pem')}`,
      `--cert=${join(tls, 'etcd.pem')}`,
      `--key=${join(tls, 'etcd-key.pem')}`,
      ...args,
    ],
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ETCDCTL_API: '3' }, timeoutMs: 20_000 },
  );
  return stdout;
}

/** The etcd members as `n`'s own etcd certificate sees them (etcdctl inside its host). */
export async function members(n: HostNode): Promise<MemberJson[]> {
  return (JSON.parse(await etcdctl(n, ['member', 'list', '-w', 'json'])) as { members: MemberJson[] }).members;
}

/** The first line of `dm cluster token create` into a new file in `dir`: the join command's address and pin. */
export async function tokenFor(n: HostNode, file: string): Promise<{ address: string; caHash: string }> {
  const out = await n.ok(['cluster', 'token', 'create', '--token-file', file]);
  const m = /dm cluster join (\S+) --ca-hash (sha256:[0-9a-f]{64})/.exec(out);
  assert.ok(m, out);
  return { address: m[1]!, caHash: m[2]! };
}

/** `dm cluster join` through `t` (a node's address and CA pin) with the token in `t.file`, and `n`'s options. */
export function joinArgs(n: HostNode, t: { readonly file: string; readonly address: string; readonly caHash: string }): string[] {
  return ['cluster', 'join', t.address, '--ca-hash', t.caHash, '--token-file', t.file, ...n.nodeArgs()];
}

/** The node id `n`'s server has (its pool's id). */
export async function nodeIdOf(n: HostNode): Promise<string> {
  return (JSON.parse(await n.ok(['debug', 'DumpInternalState', 'myNodeId'])) as Record<string, string>).myNodeId!;
}
