import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  createHosts,
  type DmResult,
  detachLoopDevicesUnder,
  freePorts,
  makeTempDir,
  type NetnsEtcd,
  runDmIn,
  SERVER_BUNDLE,
  skipUnless,
  startEtcdIn,
  type TestHost,
  unmountUnder,
} from '@dotmesh/testkit';

/**
 * docs/cluster.md, "Make a cluster of several nodes", run as written: `dm cluster init` on the
 * first node with the shared etcd, the CA files copied, then on the second node `dm remote add
 * local` with the admin's key and `dm cluster init` with the cluster CA flags. Each node is a
 * test host; every path and port is the test's own (the flags the docs leave at their defaults
 * are given here with free ports and private paths).
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

interface Node {
  readonly host: TestHost;
  readonly home: string;
  readonly poolDir: string;
  readonly port: number;
  dm(args: readonly string[], env?: Record<string, string>): Promise<DmResult>;
  ok(args: readonly string[], env?: Record<string, string>): Promise<string>;
  initArgs(etcd: NetnsEtcd): Promise<string[]>;
}

describe('make a cluster of several nodes with dm cluster init (docs/cluster.md)', { skip }, () => {
  const cleanup = new Cleanup();
  let etcd: NetnsEtcd;
  let n1: Node;
  let n2: Node;
  before(async () => {
    const [h1, h2, etcdHost] = (await createHosts({ cleanup, count: 3 })) as [TestHost, TestHost, TestHost];
    etcd = await startEtcdIn({ cleanup, host: etcdHost });
    [n1, n2] = await Promise.all([node(h1), node(h2)]);
  });
  after(() => cleanup.run());

  async function node(host: TestHost): Promise<Node> {
    const [home, poolDir, dockerDir] = await Promise.all([
      makeTempDir('home', cleanup),
      makeTempDir('pool', cleanup),
      makeTempDir('docker', cleanup),
    ]);
    const [port, checkPort, tlsPort, clusterPort] = (await freePorts(4)) as [number, number, number, number];
    const dm = (args: readonly string[], env: Record<string, string> = {}) =>
      runDmIn(host, args, { home, env, timeoutMs: 120_000 });
    const ok = async (args: readonly string[], env: Record<string, string> = {}) => {
      const r = await dm(args, env);
      if (r.code !== 0) {
        const log = await readFile(join(poolDir, 'server', 'dotmesh-server.log'), 'utf8').catch(() => '');
        assert.fail(`dm ${args.join(' ')} on ${host.address} exited ${r.code}\n${r.stdout}\n${r.stderr}\n${log.slice(-3000)}`);
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
      dm,
      ok,
      initArgs: async (e: NetnsEtcd) => [
        'cluster',
        'init',
        '--store',
        'etcd',
        '--etcd-endpoints',
        e.endpoints.join(','),
        '--advertise-address',
        host.address,
        // The docs' defaults, made private to the test:
        '--cluster-port',
        String(clusterPort),
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
      ],
    };
  }

  test('the first node, then a node with the cluster CA: one cluster, every dot seen and moved from either', async () => {
    const first = await n1.ok(await n1.initArgs(etcd));
    const tls1 = join(n1.poolDir, 'server', 'tls');
    assert.match(
      first,
      new RegExp(
        `Node of a cluster of several nodes: node-to-node endpoint on port \\d+, advertised at ${n1.host.address.replaceAll('.', '\\.')}; store etcd at ${etcd.endpoints[0]}\\.`,
      ),
    );
    assert.ok(first.includes(`--cluster-ca-cert ${join(tls1, 'ca.pem')} --cluster-ca-key ${join(tls1, 'ca-key.pem')}`), first);

    // Step 2: the CA files go to the second node (a directory of its own).
    const carried = await makeTempDir('dotmesh-ca', cleanup);
    for (const f of ['ca.pem', 'ca-key.pem']) await writeFile(join(carried, f), await readFile(join(tls1, f)), { mode: 0o600 });

    // Step 3: the admin's API key from the first node, then init with the CA flags.
    const { ApiKey } = JSON.parse(await n1.ok(['debug', 'GetApiKey'])) as { ApiKey: string };
    await n2.ok(['remote', 'add', 'local', `admin@${n1.host.address}:${n1.port}`], { DOTMESH_PASSWORD: ApiKey });
    const second = await n2.ok([
      ...(await n2.initArgs(etcd)),
      '--cluster-ca-cert',
      join(carried, 'ca.pem'),
      '--cluster-ca-key',
      join(carried, 'ca-key.pem'),
    ]);
    assert.match(
      second,
      /Installed the cluster CA .*ca\.pem in .*\/server\/tls \(this node's certificates are issued again by it\)/,
    );
    assert.match(second, /The cluster keeps its admin password, API keys and users/);
    const tls2 = join(n2.poolDir, 'server', 'tls');
    assert.deepEqual(await readFile(join(tls2, 'ca.pem')), await readFile(join(tls1, 'ca.pem')));
    const config = JSON.parse(await readFile(join(n2.poolDir, 'server', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.store, 'etcd');
    assert.equal(config.advertiseAddress, n2.host.address);
    assert.ok(typeof config.clusterPort === 'number' && config.clusterPort > 0);

    // Step 4: one cluster.
    const id1 = (JSON.parse(await n1.ok(['debug', 'DumpInternalState', 'myNodeId'])) as Record<string, string>).myNodeId!;
    const id2 = (JSON.parse(await n2.ok(['debug', 'DumpInternalState', 'myNodeId'])) as Record<string, string>).myNodeId!;
    const nodeCert = new X509Certificate(await readFile(join(tls2, 'node.pem')));
    assert.ok(
      nodeCert.checkIssued(new X509Certificate(await readFile(join(tls1, 'ca.pem')))),
      'node 2’s certificate is of the cluster CA',
    );
    assert.ok(nodeCert.subject.split('\n').includes(`CN=${id2}`));
    const nodes = JSON.parse(await n2.ok(['debug', 'DumpInternalState', 'nodes.'])) as Record<string, string>;
    assert.equal(nodes[`nodes.${id1}.addresses`], n1.host.address);
    assert.equal(nodes[`nodes.${id2}.addresses`], n2.host.address);

    await n1.ok(['init', 'docs']);
    const server = (out: string) =>
      out
        .split('\n')
        .find((l) => l.startsWith('docs\t'))
        ?.split('\t')[2];
    assert.equal(server(await n2.ok(['list', '-H'])), id1, 'node 2 lists the dot node 1 made, mastered by node 1');
    const mnt = join(n2.home, 'docs-mnt');
    await n2.ok(['mount', 'docs', mnt]);
    await writeFile(join(mnt, 'hello'), 'from node 2');
    assert.equal(server(await n1.ok(['list', '-H'])), id2, 'mounted on node 2: moved there');
    await n1.ok(['switch', 'docs']);
    await n1.ok(['commit', '-m', 'committed through node 1']);
    assert.match(await n2.ok(['switch', 'docs']).then(() => n2.ok(['log'])), /committed through node 1/);
  });
});
