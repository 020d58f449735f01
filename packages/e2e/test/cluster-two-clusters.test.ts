import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DotmeshNode, makeTempDir, makeTestCa, skipUnless, startDotmeshCluster } from '@dotmesh/testkit';
import { commit, commitIds, fileHash, holdsVolume, listedMaster, lookup, procure, writeRandom } from './cluster-helpers.ts';

/**
 * The original's TestTwoDoubleNodeClusters: two clusters of two nodes each, every node a real
 * server on its own pool and host (cluster B on the same etcd under another key prefix, with a
 * CA of its own). `dm push`, `pull` and `clone` whose remote is the node of the other cluster
 * that does not master the dot work: that node passes the transfer on to the master
 * (PushWrongNode, PullWrongNode); a push run through the node of cluster A that does not master
 * the local dot runs on its master. Without background replication, so a node that only passed
 * a transfer on holds no copy of the dot.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

describe('TestTwoDoubleNodeClusters: push, pull and clone through a node that does not master the dot', { skip }, () => {
  const cleanup = new Cleanup();
  let a1: DotmeshNode;
  let a2: DotmeshNode;
  let b1: DotmeshNode;
  let b2: DotmeshNode;
  before(async () => {
    const cluster = await startDotmeshCluster({ cleanup, nodes: 2, spareHosts: 2, extraConfig: { replicate: false } });
    [a1, a2] = cluster.nodes as [DotmeshNode, DotmeshNode];
    const caB = await makeTestCa(await makeTempDir('cluster-b-ca', cleanup), 'dmtest cluster B CA');
    b1 = await cluster.addNode({ host: cluster.spares[0]!, etcdPrefix: 'cluster-b/', ca: caB });
    b2 = await cluster.addNode({ host: cluster.spares[1]!, etcdPrefix: 'cluster-b/', ca: caB });
    // Remotes `b1` and `b2` on both nodes of cluster A.
    for (const a of [a1, a2]) {
      for (const [name, b] of [
        ['b1', b1],
        ['b2', b2],
      ] as const) {
        await a.ok(['remote', 'add', name, `admin@${b.host.address}:${new URL(b.url).port}`], {
          env: { DOTMESH_PASSWORD: b.apiKey },
        });
      }
    }
  });
  after(() => cleanup.run());

  test('PushWrongNode: a push to node 2 of cluster B, whose node 1 masters the dot, lands on node 1', async () => {
    await writeRandom(a1, 'apples', 'data');
    await commit(a1, 'apples', 'first');
    await a1.ok(['push', 'b1', 'apples']);
    const id = await lookup(b1, 'apples');
    assert.equal(id, await lookup(a1, 'apples'), 'a push keeps the dot’s id');
    assert.equal(await listedMaster(b2, 'apples'), b1.nodeId, 'cluster B: node 1 masters it');

    const hash = await writeRandom(a1, 'apples', 'data');
    const second = await commit(a1, 'apples', 'second');
    await a1.ok(['push', 'b2', 'apples']);
    assert.deepEqual(await commitIds(b1, 'apples'), await commitIds(a1, 'apples'), 'node 1 of B has every commit');
    assert.ok((await commitIds(b2, 'apples')).includes(second), 'and node 2 lists them');
    assert.equal(await listedMaster(b2, 'apples'), b1.nodeId, 'the master did not move');
    assert.ok(!holdsVolume(b2, id), 'node 2 of B passed the push on and holds no copy');
    assert.equal(await fileHash(join(await procure(b1, 'apples'), 'data')), hash);
  });

  test('PullWrongNode: a pull through node 2 of cluster B gets the commits node 1 made', async () => {
    const hash = await writeRandom(b1, 'apples', 'data');
    const onB = await commit(b1, 'apples', 'third, on cluster B');
    await a1.ok(['pull', 'b2', 'apples']);
    assert.deepEqual(await commitIds(a1, 'apples'), await commitIds(b1, 'apples'));
    assert.ok((await commitIds(a1, 'apples')).includes(onB));
    assert.equal(await fileHash(join(await procure(a1, 'apples'), 'data')), hash);
    assert.ok(!holdsVolume(b2, await lookup(b1, 'apples')), 'node 2 of B still holds no copy');
  });

  test('clone through node 2 of cluster B; a push run through node 2 of cluster A, which does not master the dot, runs on node 1', async () => {
    const hash = await writeRandom(b1, 'pears', 'data');
    await commit(b1, 'pears', 'on cluster B');
    await a1.ok(['clone', 'b2', 'pears']);
    const id = await lookup(a1, 'pears');
    assert.equal(id, await lookup(b1, 'pears'));
    assert.deepEqual(await commitIds(a1, 'pears'), await commitIds(b1, 'pears'));
    assert.equal(await fileHash(join(await procure(a1, 'pears'), 'data')), hash);
    assert.equal(await listedMaster(a2, 'pears'), a1.nodeId, 'cluster A: node 1 masters the clone');

    await writeRandom(a1, 'pears', 'data');
    const onA = await commit(a1, 'pears', 'on cluster A');
    await a2.ok(['push', 'b2', 'pears']);
    assert.deepEqual(await commitIds(b1, 'pears'), await commitIds(a1, 'pears'));
    assert.ok((await commitIds(b1, 'pears')).includes(onA));
    assert.ok(!holdsVolume(a2, id) && !holdsVolume(b2, id), 'the two nodes that only passed it on hold no copy');
  });
});
