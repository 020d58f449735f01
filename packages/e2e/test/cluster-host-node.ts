import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Cleanup,
  type DmResult,
  detachLoopDevicesUnder,
  freePorts,
  makeTempDir,
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
  dm(args: readonly string[], env?: Record<string, string>): Promise<DmResult>;
  /** dm that must exit 0 (fails the test with its output and the server's and etcd's log tails). */
  ok(args: readonly string[], env?: Record<string, string>): Promise<string>;
  /** The options of this host's node (ports, paths), after `init` or `join ...`. */
  nodeArgs(): string[];
}

export async function makeHostNode(cleanup: Cleanup, host: TestHost, extraArgs: readonly string[] = []): Promise<HostNode> {
  const [home, poolDir, dockerDir] = await Promise.all([
    makeTempDir('home', cleanup),
    makeTempDir('pool', cleanup),
    makeTempDir('docker', cleanup),
  ]);
  const [port, checkPort, tlsPort, clusterPort, etcdClientPort, etcdPeerPort] = (await freePorts(6)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const dm = (args: readonly string[], env: Record<string, string> = {}) =>
    runDmIn(host, args, { home, env, timeoutMs: 180_000 });
  const ok = async (args: readonly string[], env: Record<string, string> = {}) => {
    const r = await dm(args, env);
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
  return {
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
}
