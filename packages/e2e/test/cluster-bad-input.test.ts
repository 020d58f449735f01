import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN_USER_ID } from '@dotmesh/core';
import {
  Cleanup,
  type DotmeshNode,
  type DotmeshTestCluster,
  installClusterCa,
  makeTempDir,
  makeTestCa,
  routeCheck,
  skipUnless,
  startDotmeshCluster,
  type TestCa,
  type TestHost,
  waitFor,
} from '@dotmesh/testkit';
import {
  commit,
  commitIds,
  fileHash,
  holdsVolume,
  listedMaster,
  lookup,
  procure,
  rewrittenByLiveNodes,
  writeRandom,
} from './cluster-helpers.ts';
import { waitForTransfer } from './transfer-harness.ts';

/**
 * What a cluster of real nodes does with input nobody should send it: node-to-node calls that
 * did not come from a live node of this cluster, or claim a user that does not exist (each
 * refused, nothing changed); a pool that was a node of another cluster (its dots join, a name
 * the cluster gives to another dot is never taken: RECOVERED names); a pool id that is already
 * live on another host (refused with CONFLICT naming that host's address, nothing changed).
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);
const NODE_RPC_PATH = '/node/v1/rpc';

const callerHeader = (caller: { id: string; name: string; authMethod: string }) =>
  Buffer.from(JSON.stringify(caller)).toString('base64');

interface NodeReply {
  /** 0: no HTTP answer (the TLS handshake was refused). */
  readonly status: number;
  readonly text: string;
}

describe('bad input on a cluster of real nodes', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  let outsider: TestHost;
  before(async () => {
    cluster = await startDotmeshCluster({ cleanup, nodes: 2, spareHosts: 2 });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
    outsider = cluster.spares[0]!;
  });
  after(() => cleanup.run());

  /** POSTs to `to`'s node-to-node endpoint from the outsider host with curl and the given client certificate. */
  async function nodePost(
    to: DotmeshNode,
    o: { cert?: { cert: string; key: string }; headers?: Record<string, string>; body: string; path?: string },
  ): Promise<NodeReply> {
    await routeCheck(outsider, to.host.address);
    const headers = Object.entries(o.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
    try {
      const { stdout } = await outsider.exec('curl', [
        '-sS',
        '--max-time',
        '10',
        '--cacert',
        cluster.ca.caCert,
        ...(o.cert ? ['--cert', o.cert.cert, '--key', o.cert.key] : []),
        '-H',
        'Content-Type: application/json',
        ...headers,
        '--data-binary',
        o.body,
        '-w',
        '\n%{http_code}',
        `https://${to.host.address}:${to.clusterPort}${o.path ?? NODE_RPC_PATH}`,
      ]);
      const nl = stdout.lastIndexOf('\n');
      return { status: Number(stdout.slice(nl + 1)), text: stdout.slice(0, nl) };
    } catch (e) {
      return { status: 0, text: (e as Error).message };
    }
  }

  const nodeCert = (ca: TestCa, name: string, nodeId: string) =>
    ca.sign(name, `/O=dotmesh/CN=${nodeId}`, 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n');

  test('forged node-to-node calls are refused and change nothing', async () => {
    await writeRandom(n1, 'target', 'data');
    const one = await commit(n1, 'target', 'one');
    const before = await commitIds(n1, 'target');
    const body = (method: string, params: unknown) =>
      JSON.stringify({ jsonrpc: '2.0', method: `DotmeshRPC.${method}`, params, id: 1 });
    const deleteIt = body('Delete', { Namespace: 'admin', Name: 'target' });
    const rollBack = body('Rollback', { Namespace: 'admin', Name: 'target', Branch: '', SnapshotId: before[0] });
    const admin = {
      'x-dotmesh-caller': callerHeader({ id: ADMIN_USER_ID, name: 'admin', authMethod: 'apikey' }),
      'x-dotmesh-hops': '1',
    };

    // No client certificate (only the join routes serve such a caller): 403.
    const none = await nodePost(n1, { headers: admin, body: deleteIt });
    assert.equal(none.status, 403, `no certificate: ${none.text}`);
    assert.match(none.text, /unknown node \(no certificate of this cluster\)/);
    // A certificate of another CA, even naming a live node: 403 too.
    const otherCa = await makeTestCa(await makeTempDir('other-ca', cleanup), 'another cluster CA');
    const foreign = await nodeCert(otherCa, 'foreign', n2.nodeId);
    const stranger = await nodePost(n1, { cert: foreign, headers: admin, body: deleteIt });
    assert.equal(stranger.status, 403, `another CA: ${stranger.text}`);
    assert.match(stranger.text, /unknown node \(no certificate of this cluster\)/);
    // A certificate of this CA for a node id that is not live: 403, on the RPC and transfer routes.
    const ghostNode = await nodeCert(cluster.ca, 'ghost-node', 'eeeeeeeeeeee0009');
    const unknown = await nodePost(n1, { cert: ghostNode, headers: admin, body: deleteIt });
    assert.equal(unknown.status, 403);
    assert.match(unknown.text, /unknown node eeeeeeeeeeee0009/);
    const unknownTransfer = await nodePost(n1, { cert: ghostNode, body: '{}', path: '/transfer/v1/hello' });
    assert.equal(unknownTransfer.status, 403);
    // A live node's certificate (forged with this CA's key) claiming a user that does not exist,
    // or a real user's id under another name: 403. No caller or hop count: 400.
    const liveNode = await nodeCert(cluster.ca, 'live-node', n2.nodeId);
    const ghostUser = {
      'x-dotmesh-caller': callerHeader({ id: '11111111-1111-4111-8111-111111111111', name: 'ghost', authMethod: 'apikey' }),
      'x-dotmesh-hops': '1',
    };
    const ghost = await nodePost(n1, { cert: liveNode, headers: ghostUser, body: deleteIt });
    assert.equal(ghost.status, 403);
    assert.match(ghost.text, /no user ghost/);
    const renamed = {
      'x-dotmesh-caller': callerHeader({ id: ADMIN_USER_ID, name: 'bob', authMethod: 'apikey' }),
      'x-dotmesh-hops': '1',
    };
    assert.equal((await nodePost(n1, { cert: liveNode, headers: renamed, body: rollBack })).status, 403);
    assert.equal((await nodePost(n1, { cert: liveNode, body: rollBack })).status, 400);
    assert.equal(
      (await nodePost(n1, { cert: liveNode, headers: { ...admin, 'x-dotmesh-hops': '9' }, body: rollBack })).status,
      400,
    );

    // Nothing changed: the dot is there with its commits and data.
    for (const n of [n1, n2]) assert.deepEqual(await commitIds(n, 'target'), before);
    assert.ok(before.includes(one));
    // The same call with the live node's certificate and a real caller is answered: the refusals
    // above were for the reasons tested.
    const control = await nodePost(n1, {
      cert: liveNode,
      headers: admin,
      body: body('Commits', { Namespace: 'admin', Name: 'target', Branch: '' }),
    });
    assert.equal(control.status, 200, control.text);
    assert.deepEqual(
      (JSON.parse(control.text) as { result: Array<{ Id: string }> }).result.map((c) => c.Id),
      before,
    );
  });

  test('a pool from another cluster joins: its dots are adopted, a name taken here gets a RECOVERED name, nothing here is clobbered', async () => {
    // This cluster's dots: `shared` (a name the other cluster uses for its own dot), `pushed`
    // (pushed to the other cluster, which then writes to its copy).
    const sharedHash = await writeRandom(n1, 'shared', 'data');
    await commit(n1, 'shared', 'ours');
    await writeRandom(n1, 'pushed', 'data');
    await commit(n1, 'pushed', 'ours');
    const sharedId = await lookup(n1, 'shared');
    const pushedId = await lookup(n1, 'pushed');
    const sharedCommits = await commitIds(n1, 'shared');

    // A node of another cluster: same etcd, another key prefix, another CA.
    const otherCa = await makeTestCa(await makeTempDir('other-cluster-ca', cleanup), 'other dotmesh cluster CA');
    const other = await cluster.addNode({ host: cluster.spares[1]!, etcdPrefix: 'another-cluster/', ca: otherCa });
    assert.deepEqual(await other.admin.call('List', null), {}, 'the other cluster has none of our dots');
    const theirShared = await writeRandom(other, 'shared', 'data');
    await commit(other, 'shared', 'theirs');
    const theirSharedId = await lookup(other, 'shared');
    const theirOwn = await writeRandom(other, 'own', 'data');
    const ownCommit = await commit(other, 'own', 'their own');
    const transfer = await n1.admin.call('Transfer', {
      Peer: other.host.address,
      User: 'admin',
      Port: Number(new URL(other.url).port),
      ApiKey: other.apiKey,
      Direction: 'push',
      LocalNamespace: 'admin',
      LocalName: 'pushed',
      LocalBranchName: '',
      RemoteNamespace: 'admin',
      RemoteName: 'pushed',
      RemoteBranchName: '',
      TargetCommit: '',
      StashDivergence: false,
      PeerCertSha256: '',
      PeerHttps: false,
    });
    const { final } = await waitForTransfer(n1.admin, transfer, { intervalMs: 100 });
    assert.equal(final.Status, 'finished', final.Message);
    assert.equal(await lookup(other, 'pushed'), pushedId, 'a push keeps the dot’s id');
    await writeRandom(other, 'pushed', 'theirs');
    const theirPushed = await commit(other, 'pushed', 'written in the other cluster');
    await writeRandom(n1, 'pushed', 'ours-2');
    await commit(n1, 'pushed', 'ours again');
    const pushedCommits = await commitIds(n1, 'pushed');
    const pushedHash = await fileHash(join(await procure(n1, 'pushed'), 'data'));

    // Its pool comes to this cluster: the node starts on this cluster's prefix and CA.
    await other.stop();
    await other.configure({ etcdPrefix: '' });
    await installClusterCa(join(other.dir, 'server'), cluster.ca);
    await other.start();
    // The other nodes' views follow etcd: wait until they have seen what the joining node claimed.
    for (const n of [n1, n2]) {
      await waitFor(
        async () => {
          const names = Object.keys((await n.admin.call('List', null)).admin ?? {});
          return names.includes('own') && names.some((name) => name.startsWith('shared-RECOVERED-'));
        },
        { timeoutMs: 20_000, what: `node ${n.index} to see the joining node's dots` },
      );
    }

    // Nothing of ours changed.
    for (const n of [n1, n2, other]) {
      assert.equal(await lookup(n, 'shared'), sharedId, `node ${n.index}: shared is still our dot`);
      assert.deepEqual(await commitIds(n, 'shared'), sharedCommits);
      assert.deepEqual(await commitIds(n, 'pushed'), pushedCommits, `node ${n.index}: pushed keeps our history`);
      assert.equal(await listedMaster(n, 'pushed'), n1.nodeId);
    }
    assert.equal(await fileHash(join(await procure(n1, 'shared'), 'data')), sharedHash);
    assert.equal(await fileHash(join(await procure(n1, 'pushed'), 'data')), pushedHash);
    // Theirs joined: their `shared` under a RECOVERED name, `own` as it was, mastered by its node.
    const list = await n2.admin.call('List', null);
    const recovered = Object.keys(list.admin ?? {}).filter((name) => name.startsWith('shared-RECOVERED-'));
    assert.equal(recovered.length, 1, `one recovered name: ${Object.keys(list.admin ?? {})}`);
    const recoveredName = recovered[0]!;
    assert.equal(list.admin?.[recoveredName]?.Id, theirSharedId);
    assert.equal(list.admin?.[recoveredName]?.Master, other.nodeId);
    assert.equal(await fileHash(join(await procure(other, recoveredName), 'data')), theirShared);
    assert.ok((await commitIds(n2, 'own')).includes(ownCommit));
    assert.equal(await listedMaster(n2, 'own'), other.nodeId);
    assert.equal(await fileHash(join(await procure(other, 'own'), 'data')), theirOwn);
    // Their commit to `pushed` is not in our history, and not lost: it stays in their pool.
    assert.ok(!pushedCommits.includes(theirPushed));
    assert.ok(holdsVolume(other, pushedId));
    assert.ok(
      (await cluster.etcd.keys(`dotmesh.io/servers/snapshots/${other.nodeId}/${pushedId}/`)).some((kv) =>
        kv.key.endsWith(`/${theirPushed}`),
      ),
      'the node advertises the commit it holds',
    );
  });

  test('a pool id already live on another host is refused with CONFLICT naming that host, and changes nothing', async () => {
    const clash = cluster.spares[0]!;
    // A node of its own first (a pool, a certificate), then its pool takes node 1's id.
    const copy = await cluster.addNode({ host: clash });
    await copy.stop();
    const poolJson = join(copy.dir, 'mnt', 'pool.json');
    const pool = JSON.parse(await readFile(poolJson, 'utf8')) as { poolId: string };
    await writeFile(poolJson, JSON.stringify({ ...pool, poolId: n1.nodeId }));
    // The refused server waits a lease TTL for n1's record (a dead holder's would expire): the
    // copy's own keys from its first life expire meanwhile, so they go before the snapshot.
    await waitFor(async () => (await cluster.etcd.keys(`dotmesh.io/servers/addresses/${pool.poolId}`)).length === 0, {
      timeoutMs: 60_000,
      what: "the copy's first node's lease expired",
    });
    const before = await cluster.etcd.keys('dotmesh.io/');
    const keysOf = (kvs: typeof before) => kvs.map((kv) => `${kv.key}=${kv.value}`).sort();
    await assert.rejects(copy.start(), (e: Error) => {
      assert.match(e.message, /exited with 1 during start/);
      assert.match(e.message, new RegExp(`node id ${n1.nodeId} is already live at ${n1.host.address.replaceAll('.', '\\.')}`));
      assert.match(e.message, /CONFLICT|clashes with a running node/);
      return true;
    });
    const after = await cluster.etcd.keys('dotmesh.io/');
    // What the live nodes advertise again and again (sizes, containers, pool space) aside.
    assert.deepEqual(
      keysOf(after).filter((k) => !rewrittenByLiveNodes(k)),
      keysOf(before).filter((k) => !rewrittenByLiveNodes(k)),
      'nothing in etcd changed',
    );
    assert.equal(await listedMaster(n2, 'target'), n1.nodeId);
    assert.ok((await commitIds(n2, 'target')).length >= 2, 'node 1 still answers for its dots');
  });
});
