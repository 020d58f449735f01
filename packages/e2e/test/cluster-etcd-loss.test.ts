import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster, waitFor } from '@dotmesh/testkit';
import { commit, commitIds, fileHash, listedMaster, lookup, masterKey, procure, writeRandom } from './cluster-helpers.ts';

/**
 * etcd lost entirely: both nodes are killed, etcd is replaced by a fresh, empty member, the
 * nodes start again (node 1 first). Each node's pool is the truth for what it holds, so every
 * dot, branch and commit comes back, with the data. Users live only in etcd: the admin is
 * seeded again from an initial-credentials file, as `dm cluster init` on the pool dir does.
 *
 * A branch handed over (node 1 → node 2) and committed to on node 2 is held by both; node 1
 * starts first, but its copy is marked a replica in its pool: node 2 claims the branch back,
 * with its newest commit.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

interface Snapshot {
  readonly branches: Record<string, string>;
  readonly commits: Record<string, string[]>;
}

describe('etcd lost entirely: the pools bring everything back', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  before(async () => {
    cluster = await startDotmeshCluster({ cleanup, nodes: 2 });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());

  /** Branch ids and commit ids of a dot, by branch, through `node`. */
  async function snapshot(node: DotmeshNode, name: string): Promise<Snapshot> {
    const names = ['', ...(await node.admin.call('Branches', { Namespace: 'admin', Name: name }))];
    const branches: Record<string, string> = {};
    const commits: Record<string, string[]> = {};
    for (const b of names) {
      branches[b] = await lookup(node, name, b);
      commits[b] = await commitIds(node, name, b);
    }
    return { branches, commits };
  }

  test('wipe etcd, restart every node: every dot, branch and commit is back, with its data and master', async () => {
    const alpha = { data: await writeRandom(n1, 'alpha', 'data', 1024 * 1024) };
    const one = await commit(n1, 'alpha', 'one');
    await n1.admin.call('Branch', {
      Namespace: 'admin',
      Name: 'alpha',
      SourceBranch: 'master',
      NewBranchName: 'feature',
      SourceCommitId: one,
    });
    await commit(n1, 'alpha', 'on feature', 'feature');
    const alphaLive = await writeRandom(n1, 'alpha', 'data');
    await commit(n1, 'alpha', 'two');
    const betaLive = await writeRandom(n2, 'beta', 'data');
    await commit(n2, 'beta', 'beta one');
    // Handed over: node 1 keeps a copy of its first commits, node 2 has them all.
    await writeRandom(n1, 'moved', 'data');
    await commit(n1, 'moved', 'on node 1');
    await procure(n2, 'moved');
    const movedLive = await writeRandom(n2, 'moved', 'data');
    const newest = await commit(n2, 'moved', 'on node 2 only');
    const before = { alpha: await snapshot(n2, 'alpha'), beta: await snapshot(n1, 'beta'), moved: await snapshot(n1, 'moved') };
    assert.ok(alpha.data !== alphaLive);

    await Promise.all([n1.kill9(), n2.kill9()]);
    await cluster.etcd.wipe();
    assert.deepEqual(await cluster.etcd.keys(''), [], 'etcd is empty');
    // The admin lived only in etcd: seeded again, as `dm cluster init` on the pool dir does.
    for (const n of [n1, n2]) {
      await writeFile(
        join(n.dir, 'server', 'initial-admin.json'),
        JSON.stringify({ password: n.process.password, apiKey: n.apiKey }),
        {
          mode: 0o600,
        },
      );
    }
    await n1.start();
    await n2.start();
    // Each node's view follows etcd: wait until both have seen every claim.
    for (const n of [n1, n2]) {
      await waitFor(
        async () => {
          const list = (await n.admin.call('List', null)).admin ?? {};
          return ['alpha', 'beta', 'moved'].every((name) => (list[name]?.Master ?? '') !== '');
        },
        { timeoutMs: 20_000, what: `node ${n.index} to list every dot with its master` },
      );
    }

    for (const n of [n1, n2]) {
      assert.deepEqual(Object.keys((await n.admin.call('List', null)).admin ?? {}).sort(), ['alpha', 'beta', 'moved']);
      assert.deepEqual(await snapshot(n, 'alpha'), before.alpha, `node ${n.index}: alpha's branches and commits`);
      assert.deepEqual(await snapshot(n, 'beta'), before.beta, `node ${n.index}: beta's`);
      assert.equal(await listedMaster(n, 'alpha'), n1.nodeId);
      assert.equal(await listedMaster(n, 'beta'), n2.nodeId);
    }
    assert.equal(await fileHash(join(await procure(n1, 'alpha'), 'data')), alphaLive);
    assert.equal(await fileHash(join(await procure(n2, 'beta'), 'data')), betaLive);
    for (const [b, id] of Object.entries(before.alpha.branches))
      assert.equal(await masterKey(cluster, id), n1.nodeId, `alpha@${b}`);

    // `moved`: node 1 started first, but its copy is a replica (handed over): node 2, whose copy
    // is the master's, claims it, with the newest commit and its data.
    const movedId = before.moved.branches['']!;
    assert.equal(await masterKey(cluster, movedId), n2.nodeId);
    for (const n of [n1, n2]) {
      assert.equal(await listedMaster(n, 'moved'), n2.nodeId);
      assert.deepEqual(await commitIds(n, 'moved'), before.moved.commits['']);
    }
    assert.ok(before.moved.commits['']!.includes(newest));
    assert.equal(await fileHash(join(await procure(n2, 'moved'), 'data')), movedLive);
    // And it moves on as usual: to node 1 (which lacked the newest commit) and back.
    assert.equal(await fileHash(join(await procure(n1, 'moved'), 'data')), movedLive);
    assert.equal(await fileHash(join(await procure(n2, 'moved'), 'data')), movedLive);
    assert.ok((await commit(n2, 'moved', 'usable again')).length > 0);
  });
});
