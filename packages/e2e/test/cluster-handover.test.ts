import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster } from '@dotmesh/testkit';
import { commitsOf, fileHash, listedMaster, lookup, masterKey, procure, writeRandom } from './cluster-helpers.ts';

/**
 * The original's TestStressHandover: a dot mounted on every node of a three-node cluster in
 * turn, ten rounds. Each mount moves the branch there (a handoff) with what the previous node
 * wrote, committed by the handoff; the data's hash is checked at every step, and so are the
 * master key, the master every node names and the history (one migration commit per move).
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);
const ROUNDS = 10;

describe('handover stress: ten rounds of mounting on every node', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let nodes: DotmeshNode[];
  before(async () => {
    cluster = await startDotmeshCluster({ cleanup, nodes: 3 });
    nodes = cluster.nodes;
  });
  after(() => cleanup.run());

  test(`${ROUNDS} rounds × ${3} nodes: the data follows the dot, hash checked at every mount`, async () => {
    const first = nodes[0]!;
    let expected = await writeRandom(first, 'stress', 'data', 512 * 1024);
    const id = await lookup(first, 'stress');
    let commits = (await commitsOf(first, 'stress')).length;
    let moves = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      for (const node of nodes) {
        if (round === 1 && node === first) continue;
        const path = await procure(node, 'stress');
        const where = `round ${round}, node ${node.index}`;
        assert.equal(await fileHash(join(path, 'data')), expected, `${where}: the data the previous node wrote`);
        assert.equal(await masterKey(cluster, id), node.nodeId, `${where}: the master key`);
        assert.equal(await listedMaster(nodes[(node.index + 1) % 3]!, 'stress'), node.nodeId, `${where}: another node agrees`);
        const history = await commitsOf(node, 'stress');
        moves++;
        assert.equal(history.length, commits + 1, `${where}: one migration commit per move`);
        assert.equal(history.at(-1)?.Metadata.type, 'migration');
        commits = history.length;
        expected = await writeRandom(node, 'stress', 'data', 512 * 1024);
      }
    }
    assert.equal(moves, ROUNDS * 3 - 1);
  });
});
