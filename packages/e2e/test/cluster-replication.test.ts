import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  type DotmeshNode,
  type DotmeshTestCluster,
  routeCheck,
  skipUnless,
  startDotmeshCluster,
  waitFor,
} from '@dotmesh/testkit';
import {
  commit,
  commitIds,
  committedFile,
  fileHash,
  heldOn as heldBy,
  holdsVolume,
  logged as loggedOn,
  lookup,
  procure,
  writeRandom,
} from './cluster-helpers.ts';

/**
 * Replication on three real nodes (servers on their own pools and hosts, one etcd): every
 * commit of a branch reaches every other live node in the background, into an unmounted
 * replica; a node that was down catches up; a replica holding commits the master rolled back
 * keeps them on a DIVERGED branch of its own and then matches the master; a deleted dot never
 * comes back. What a node holds is read from its own store keys
 * (`servers/snapshots/<node>/<fsId>/<commitId>`, `servers/states/<node>/<fsId>`) and from the
 * files of its pool.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

/** The sweep every node runs: short, so a test waits seconds, not the default 30 s. */
const SWEEP_MS = 2000;

describe('replication of commits to every node', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  let n3: DotmeshNode;
  before(async () => {
    cluster = await startDotmeshCluster({ cleanup, nodes: 3, extraConfig: { replicationSweepMs: SWEEP_MS } });
    [n1, n2, n3] = cluster.nodes as [DotmeshNode, DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());

  const logged = (body: () => Promise<void>) => loggedOn(() => cluster, body);

  const heldOn = (node: DotmeshNode, fsId: string) => heldBy(cluster, node, fsId);

  /** `node`'s advertised copy of branch `fsId` (its state key), or undefined. */
  async function copyOn(
    node: DotmeshNode,
    fsId: string,
  ): Promise<{ head: string | undefined; state: string; count: number } | undefined> {
    const [kv] = await cluster.etcd.keys(`dotmesh.io/servers/states/${node.nodeId}/${fsId}`);
    if (!kv) return undefined;
    const r = JSON.parse(kv.value) as { head: { commitId: string } | null; state: { state: string }; commitCount: number };
    return { head: r.head?.commitId, state: r.state.state, count: r.commitCount };
  }

  /** Waits until each of `nodes` advertises every commit of `ids` in volume `fsId`. */
  async function untilHeld(nodes: readonly DotmeshNode[], fsId: string, ids: readonly string[]): Promise<void> {
    await waitFor(
      async () => {
        for (const n of nodes) {
          const held = await heldOn(n, fsId);
          if (!ids.every((id) => held.has(id))) return false;
        }
        return true;
      },
      { timeoutMs: 60_000, what: `nodes ${nodes.map((n) => n.index).join(', ')} to hold ${ids.join(', ')} of ${fsId}` },
    );
  }

  async function metrics(node: DotmeshNode): Promise<string> {
    const url = new URL('/metrics', node.url).toString();
    await routeCheck(node.host, new URL(url).hostname);
    return (await node.host.exec('curl', ['-sS', '--max-time', '30', url])).stdout;
  }

  test(
    'a commit on the master reaches every other node: store keys, data, no missing commits, no send at a handoff',
    logged(async () => {
      const data = await writeRandom(n1, 'rep', 'DATA', 1024 * 1024);
      const one = await commit(n1, 'rep', 'one');
      const id = await lookup(n1, 'rep');
      const history = await commitIds(n1, 'rep');
      await untilHeld([n2, n3], id, history);
      for (const n of [n2, n3]) {
        assert.ok(holdsVolume(n, id), `node ${n.index} holds a copy`);
        assert.equal(await fileHash(committedFile(n, id, one, 'DATA')), data, `node ${n.index}'s replica has the committed data`);
        await waitFor(async () => (await copyOn(n, id))?.head === one, { timeoutMs: 20_000, what: `node ${n.index}'s head` });
        assert.equal((await copyOn(n, id))?.state, 'inactive', `node ${n.index}'s copy is a replica (unmounted)`);
      }
      assert.deepEqual((await copyOn(n1, id))?.state, 'active');
      // Nothing is missing anywhere: the latency lists and dm dot show say so.
      for (const n of [n1, n2, n3]) {
        const latency = await n.admin.call('GetReplicationLatencyForBranch', { Namespace: 'admin', Name: 'rep', Branch: '' });
        assert.deepEqual(latency, { [n1.nodeId]: [], [n2.nodeId]: [], [n3.nodeId]: [] }, `seen from node ${n.index}`);
      }
      const shown = await n2.ok(['dot', 'show', 'rep']);
      for (const n of [n2, n3]) assert.match(shown, new RegExp(`server ${n.nodeId} +\\(status: inactive[^)]*\\) is up to date`));
      const scraped = await metrics(n1);
      for (const n of [n2, n3]) {
        assert.match(scraped, new RegExp(`dm_replication_pending_commits\\{branch="${id}",node="${n.nodeId}"\\} 0\\n`));
      }
      // A handoff to node 2 finds every commit there: node 2 receives nothing more.
      const received = async () =>
        ((await n2.log()).match(new RegExp(`"commitId":"${one}"[^\\n]*received commit`, 'g')) ?? []).length;
      const receivedBefore = await received();
      assert.equal(receivedBefore, 1, 'node 2 received the commit once, by replication');
      assert.equal(await fileHash(join(await procure(n2, 'rep'), 'DATA')), data);
      assert.equal(await received(), receivedBefore, 'the handoff sent no commit');
      assert.deepEqual(await commitIds(n2, 'rep'), history);
    }),
  );

  test(
    'a node that was down catches up when it returns',
    logged(async () => {
      await writeRandom(n1, 'late', 'DATA');
      await commit(n1, 'late', 'before');
      const id = await lookup(n1, 'late');
      await untilHeld([n3], id, await commitIds(n1, 'late'));
      await n3.kill9();
      const data = await writeRandom(n1, 'late', 'DATA');
      const while1 = await commit(n1, 'late', 'while node 3 is down');
      await writeRandom(n1, 'late', 'MORE');
      const while2 = await commit(n1, 'late', 'still down');
      await untilHeld([n2], id, [while1, while2]);
      assert.ok(!(await heldOn(n3, id)).has(while1), 'node 3 is down: it has not received them');
      await n3.start();
      await untilHeld([n3], id, await commitIds(n1, 'late'));
      assert.equal(await fileHash(committedFile(n3, id, while1, 'DATA')), data);
      await waitFor(async () => (await copyOn(n3, id))?.head === while2, { timeoutMs: 20_000, what: "node 3's head" });
      const latency = await n3.admin.call('GetReplicationLatencyForBranch', { Namespace: 'admin', Name: 'late', Branch: '' });
      assert.deepEqual(latency[n3.nodeId], []);
    }),
  );

  test(
    'a rollback on the master: each replica keeps its extra commits on a DIVERGED branch, then matches the master',
    logged(async () => {
      await writeRandom(n1, 'back', 'DATA');
      const keep = await commit(n1, 'back', 'kept');
      const dropped = await writeRandom(n1, 'back', 'DROPPED');
      const gone = await commit(n1, 'back', 'rolled back');
      const id = await lookup(n1, 'back');
      await untilHeld([n2, n3], id, [keep, gone]);
      await waitFor(async () => (await copyOn(n2, id))?.head === gone && (await copyOn(n3, id))?.head === gone, {
        timeoutMs: 20_000,
        what: 'both replicas at the commit to roll back',
      });
      assert.equal(await n1.admin.call('Rollback', { Namespace: 'admin', Name: 'back', Branch: '', SnapshotId: keep }), true);
      for (const n of [n2, n3]) {
        await waitFor(async () => (await copyOn(n, id))?.head === keep, {
          timeoutMs: 60_000,
          what: `node ${n.index}'s replica to follow the rollback`,
        });
      }
      // Each replica moved the commit it held beyond the master's history to a branch of its own.
      const branches = await waitFor(
        async () => {
          const names = (await n1.admin.call('Branches', { Namespace: 'admin', Name: 'back' })).filter((b) =>
            b.startsWith('master-'),
          );
          return names.length >= 2 ? names : undefined;
        },
        { timeoutMs: 60_000, what: 'the DIVERGED branches of both replicas' },
      );
      assert.ok(
        branches.every((b) => /^master(-\d+)?-DIVERGED-/.test(b)),
        `DIVERGED branches: ${branches.join(', ')}`,
      );
      const owners = new Set<string>();
      for (const b of branches) {
        const fsId = await lookup(n1, 'back', b);
        const [kv] = await cluster.etcd.keys(`dotmesh.io/filesystems/masters/${fsId}`);
        owners.add((JSON.parse(kv!.value) as { node_id: string }).node_id);
        assert.equal((await commitIds(n1, 'back', b)).at(-1), gone, `${b} ends at the rolled-back commit`);
      }
      assert.deepEqual([...owners].sort(), [n2.nodeId, n3.nodeId].sort(), 'one DIVERGED branch per replica, mastered by it');
      // The rolled-back commit and its data stay in each replica's pool, where the DIVERGED branch starts.
      for (const n of [n2, n3]) {
        assert.ok((await heldOn(n, id)).has(gone), `node ${n.index} still holds the rolled-back commit`);
        assert.equal(await fileHash(committedFile(n, id, gone, 'DROPPED')), dropped);
      }
      // Several sweeps later (each DIVERGED branch replicated to every node meanwhile): the
      // rollback holds everywhere, and no further DIVERGED branch appeared.
      await new Promise((r) => setTimeout(r, 3 * SWEEP_MS));
      assert.equal((await commitIds(n1, 'back')).at(-1), keep, 'the master is still rolled back');
      for (const n of [n2, n3]) assert.equal((await copyOn(n, id))?.head, keep, `node ${n.index}'s replica too`);
      const later = (await n1.admin.call('Branches', { Namespace: 'admin', Name: 'back' })).filter((b) => b.includes('DIVERGED'));
      assert.deepEqual(later.sort(), [...branches].sort());
      assert.deepEqual(await commitIds(n2, 'back'), await commitIds(n1, 'back'));
      // The master's later commits reach the replicas as usual.
      const after = await commit(n1, 'back', 'after the rollback');
      await untilHeld([n2, n3], id, [after]);
    }),
  );

  test(
    'a commit deleted on the master is deleted from every replica, never kept on a DIVERGED branch',
    logged(async () => {
      await writeRandom(n1, 'pruned', 'DATA');
      const kept = await commit(n1, 'pruned', 'kept');
      await writeRandom(n1, 'pruned', 'SECRET');
      const deleted = await commit(n1, 'pruned', 'to delete');
      const id = await lookup(n1, 'pruned');
      await untilHeld([n2, n3], id, [kept, deleted]);
      assert.deepEqual(await n1.admin.call('DeleteCommit', { FilesystemId: id, CommitId: deleted }), {
        Deleted: true,
        Hidden: false,
      });
      for (const n of [n2, n3]) {
        await waitFor(async () => !(await heldOn(n, id)).has(deleted) && (await copyOn(n, id))?.head === kept, {
          timeoutMs: 30_000,
          what: `node ${n.index} to delete the commit from its replica`,
        });
        assert.ok(!existsSync(committedFile(n, id, deleted, 'SECRET')), `node ${n.index}'s pool no longer holds its data`);
      }
      // A commit in the middle of the history: kept hidden everywhere (a later commit's history passes through it).
      const middle = await commit(n1, 'pruned', 'middle');
      const last = await commit(n1, 'pruned', 'last');
      await untilHeld([n2, n3], id, [middle, last]);
      assert.deepEqual(await n1.admin.call('DeleteCommit', { FilesystemId: id, CommitId: middle }), {
        Deleted: false,
        Hidden: true,
      });
      const listed = await commitIds(n1, 'pruned');
      assert.ok(!listed.includes(middle) && listed.at(-1) === last);
      for (const n of [n2, n3]) {
        await waitFor(async () => (await copyOn(n, id))?.count === listed.length, {
          timeoutMs: 30_000,
          what: `node ${n.index}'s replica to list what the master lists`,
        });
        assert.equal((await copyOn(n, id))?.head, last);
      }
      // Several sweeps later: no replica kept the deleted commits on a branch of their own.
      await new Promise((r) => setTimeout(r, 3 * SWEEP_MS));
      const branches = await n1.admin.call('Branches', { Namespace: 'admin', Name: 'pruned' });
      assert.deepEqual(
        branches.filter((b) => b.includes('DIVERGED')),
        [],
        `branches: ${branches.join(', ')}`,
      );
      for (const n of [n2, n3]) assert.ok(!(await heldOn(n, id)).has(deleted), `node ${n.index} did not get it back`);
    }),
  );

  test(
    'a deleted dot is not brought back by replication',
    logged(async () => {
      await writeRandom(n1, 'doomed', 'DATA');
      await commit(n1, 'doomed', 'one');
      const id = await lookup(n1, 'doomed');
      await untilHeld([n2, n3], id, await commitIds(n1, 'doomed'));
      // A commit and the delete at once: the commit's replication races the tombstone.
      await writeRandom(n1, 'doomed', 'MORE');
      await commit(n1, 'doomed', 'two');
      await n1.ok(['dot', 'delete', '-f', 'doomed']);
      for (const n of [n1, n2, n3]) {
        await waitFor(() => !holdsVolume(n, id), { timeoutMs: 30_000, what: `node ${n.index} to destroy its copy` });
      }
      // Several sweeps later, still gone everywhere.
      await new Promise((r) => setTimeout(r, 3 * SWEEP_MS));
      for (const n of [n1, n2, n3]) {
        assert.ok(!holdsVolume(n, id), `node ${n.index} holds no copy`);
        assert.equal(await n.admin.call('Exists', { Namespace: 'admin', Name: 'doomed', Branch: '' }), '');
      }
      assert.deepEqual(
        (await cluster.etcd.keys('dotmesh.io/servers/')).filter((kv) => kv.key.includes(id)).map((kv) => kv.key),
        [],
        'no node advertises a copy or a commit of it',
      );
      assert.deepEqual(
        (await cluster.etcd.keys('dotmesh.io/registry/')).filter((kv) => kv.value.includes(id)).map((kv) => kv.key),
        [],
      );
    }),
  );

  test(
    'DumpInternalState shows the replicator; nothing waits or fails once caught up',
    logged(async () => {
      await waitFor(
        async () => {
          const s = (await n1.admin.call('DumpInternalState', 'replication.')) as Record<string, string>;
          return s['replication.enabled'] === 'true' && s['replication.waiting'] === '0' && s['replication.failing'] === '0';
        },
        { timeoutMs: 60_000, what: 'node 1’s replicator to be idle' },
      );
    }),
  );
});
