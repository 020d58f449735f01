import assert from 'node:assert/strict';
import { appendFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import {
  Cleanup,
  type DotmeshNode,
  type DotmeshTestCluster,
  detachLoopDevicesUnder,
  skipUnless,
  startDotmeshCluster,
  unmountUnder,
  waitFor,
} from '@dotmesh/testkit';
import {
  activeCopies as activeOn,
  commit,
  commitIds,
  committedFile,
  fileHash,
  heldOn as heldBy,
  logged as loggedOn,
  lookup,
  procure,
  writeRandom,
} from './cluster-helpers.ts';

/**
 * Automatic failover on three real nodes (servers on their own pools and hosts, one etcd on a
 * fourth host):
 * - a master *server* killed with -9 while a process keeps writing into its branch's mount and
 *   started again within its lease TTL keeps its branch: the master key is never written, no
 *   other node ever advertises an active copy, the writer goes on, and the node accepts commits;
 * - the master *host* gone (its links down, its server killed, its pool destroyed): its `sync`
 *   branch moves to a live node, which has every acknowledged commit with its exact content and
 *   accepts a new commit;
 * - a pinned dot on that host stays with it (no failover) until it is unpinned.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

/** The nodes' lease TTL: a server restarted within it keeps its branches. */
const TTL_SECONDS = 10;

describe('automatic failover of a gone master node', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  let n3: DotmeshNode;
  before(async () => {
    cluster = await startDotmeshCluster({
      cleanup,
      nodes: 3,
      nodeLeaseTtlSeconds: TTL_SECONDS,
      extraConfig: { failoverSweepMs: 1000, replicationSweepMs: 2000, syncCommitTimeoutMs: 20_000 },
    });
    [n1, n2, n3] = cluster.nodes as [DotmeshNode, DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());

  const logged = (body: () => Promise<void>) => loggedOn(() => cluster, body);
  const heldOn = (node: DotmeshNode, fsId: string) => heldBy(cluster, node, fsId);
  const masterKv = async (fsId: string) => {
    const [kv] = await cluster.etcd.keys(`dotmesh.io/filesystems/masters/${fsId}`);
    assert.ok(kv, `branch ${fsId} has a master key`);
    return { node: (JSON.parse(kv.value) as { node_id: string }).node_id, modRevision: kv.modRevision };
  };
  const activeCopies = (fsId: string) => activeOn(cluster, fsId);
  const untilHeld = (nodes: readonly DotmeshNode[], fsId: string, commitId: string) =>
    waitFor(async () => (await Promise.all(nodes.map((n) => heldOn(n, fsId)))).every((h) => h.has(commitId)), {
      timeoutMs: 60_000,
      what: `nodes ${nodes.map((n) => n.index)} to hold commit ${commitId}`,
    });
  const failedOverLines = async (node: DotmeshNode) =>
    (await node.log()).split('\n').filter((l) => l.includes('failed a branch over'));

  test(
    'kill -9 of the master server under a running writer, restarted within the TTL: no failover, one writable copy',
    logged(async () => {
      const data = await writeRandom(n1, 'steady', 'DATA');
      const first = await commit(n1, 'steady', 'before the crash');
      const fsId = await lookup(n1, 'steady');
      // Both other nodes hold a copy: a failover would have somewhere to go.
      await untilHeld([n2, n3], fsId, first);
      const mount = await procure(n1, 'steady');
      const writer = n1.host.spawn(
        'sh',
        ['-c', 'i=0; while :; do i=$((i+1)); echo $i >> "$0/writer.log"; sleep 0.05; done', mount],
        {
          cleanup,
        },
      );
      const lines = async () => (await readFile(join(mount, 'writer.log'), 'utf8').catch(() => '')).split('\n').length;
      await waitFor(async () => (await lines()) > 5, { timeoutMs: 20_000, what: 'the writer to write' });
      const masterBefore = await masterKv(fsId);
      const [addressBefore] = await cluster.etcd.keys(`dotmesh.io/servers/addresses/${n1.nodeId}`);
      assert.equal(masterBefore.node, n1.nodeId);

      // Watch the copies' states throughout: another node advertising an active copy would be a second writer.
      const seenActive = new Set<string>();
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          for (const node of await activeCopies(fsId)) if (node) seenActive.add(node);
          await new Promise((r) => setTimeout(r, 250));
        }
      })();
      const killedAt = Date.now();
      try {
        await n1.kill9();
        await n1.start();
        const restartMs = Date.now() - killedAt;
        const [addressAfter] = await cluster.etcd.keys(`dotmesh.io/servers/addresses/${n1.nodeId}`);
        assert.equal(
          addressAfter?.createRevision,
          addressBefore?.createRevision,
          `node 1's address key never went away: it restarted within its ${TTL_SECONDS} s lease (in ${restartMs} ms)`,
        );
        // Several failover sweeps of the other nodes, and the old lease's expiry, pass.
        await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000));
        const linesThen = await lines();
        await waitFor(async () => (await lines()) > linesThen + 5, { timeoutMs: 20_000, what: 'the writer to go on writing' });
        const second = await commit(n1, 'steady', 'after the restart');
        // Passed on to node 1 by another node too: node 1 is the master every node names.
        const third = await commit(n3, 'steady', 'through node 3');
        assert.deepEqual((await commitIds(n2, 'steady')).slice(-3), [first, second, third]);
        assert.equal(await fileHash(committedFile(n1, fsId, second, 'DATA')), data);
      } finally {
        watching = false;
        await watcher;
        await writer.stop();
      }
      assert.deepEqual(await masterKv(fsId), masterBefore, 'the master key was never written');
      assert.deepEqual([...seenActive], [n1.nodeId], 'no node but node 1 ever advertised an active copy');
      assert.deepEqual(await activeCopies(fsId), [n1.nodeId]);
      for (const n of [n2, n3]) assert.deepEqual(await failedOverLines(n), [], `node ${n.index} failed nothing over`);
    }),
  );

  test(
    'a clean stop (SIGTERM) announces a planned restart: the branch waits past the lease TTL, and its node keeps it when back',
    logged(async () => {
      const fsId = await lookup(n1, 'steady');
      const masterBefore = await masterKv(fsId);
      assert.equal(masterBefore.node, n1.nodeId);
      await n1.stop();
      const restartingKey = `dotmesh.io/servers/restarting/${n1.nodeId}`;
      assert.equal((await cluster.etcd.keys(restartingKey)).length, 1, 'the stop announced a planned restart');
      // Its lease expires (the address key goes) and several failover sweeps pass.
      await waitFor(async () => (await cluster.etcd.keys(`dotmesh.io/servers/addresses/${n1.nodeId}`)).length === 0, {
        timeoutMs: 60_000,
        what: "node 1's lease to expire",
      });
      await new Promise((r) => setTimeout(r, 5000));
      assert.deepEqual(await masterKv(fsId), masterBefore, 'no node took the branch over during the planned restart');
      for (const n of [n2, n3]) {
        assert.deepEqual(await failedOverLines(n), [], `node ${n.index} failed nothing over`);
        assert.match(await n.log(), /announced a planned restart is away/);
      }
      await n1.start();
      assert.equal((await cluster.etcd.keys(restartingKey)).length, 0, 'back: the planned-restart key is gone');
      const after = await commit(n1, 'steady', 'after the planned restart');
      assert.ok((await commitIds(n3, 'steady')).includes(after), 'another node lists the commit (routed to node 1)');
      assert.deepEqual(await masterKv(fsId), masterBefore);
    }),
  );

  /** What the host-gone test leaves for the pinned-dot test. */
  let pinnedDot: { fsId: string; commitId: string; hash: string } | undefined;
  let survivors: DotmeshNode[] = [];

  test(
    'the master host gone: its sync branch moves to a live node with every acknowledged commit, which accepts commits',
    logged(async () => {
      const acknowledged: Array<{ id: string; hash: string }> = [];
      await writeRandom(n2, 'vital', 'DATA');
      assert.match(await n2.ok(['dot', 'set-durability', 'vital', 'sync']), /set to sync/);
      for (let i = 1; i <= 4; i++) {
        const hash = await writeRandom(n2, 'vital', 'DATA', 64 * 1024);
        acknowledged.push({ id: await commit(n2, 'vital', `acknowledged ${i}`), hash });
      }
      const fsId = await lookup(n2, 'vital');
      // A pinned dot on the same node (the next test), replicated so that it could move.
      const pinnedHash = await writeRandom(n2, 'anchored', 'DATA');
      const pinnedCommit = await commit(n2, 'anchored', 'pinned');
      assert.match(await n2.ok(['dot', 'pin', 'anchored']), /Dot anchored is pinned to its node/);
      assert.match(
        await n1.ok(['dot', 'show', 'anchored']),
        /\* master \([^)]+\)\n {3}Durability: sync \([^)]+\)\n {3}Pinned to its node: no automatic failover \(set on the dot\)/,
      );
      const anchored = await lookup(n2, 'anchored');
      await untilHeld([n1, n3], anchored, pinnedCommit);
      pinnedDot = { fsId: anchored, commitId: pinnedCommit, hash: pinnedHash };
      assert.equal((await masterKv(fsId)).node, n2.nodeId);

      // The host goes: off the network, its server killed, its pool destroyed.
      for (const dev of n2.host.devices) await n2.host.exec('ip', ['link', 'set', dev, 'down']);
      await n2.kill9();
      await unmountUnder(`${n2.dir}/`);
      await detachLoopDevicesUnder(`${n2.dir}/`);
      for (const f of ['dotmesh_data', 'mnt']) await rm(join(n2.dir, f), { recursive: true, force: true });

      const master = await waitFor(
        async () => {
          const m = (await masterKv(fsId)).node;
          return m === n2.nodeId ? undefined : m;
        },
        { timeoutMs: 120_000, intervalMs: 250, what: 'the branch to fail over' },
      );
      const newMaster = [n1, n3].find((n) => n.nodeId === master);
      assert.ok(newMaster, `the new master ${master} is a live node`);
      const other = newMaster === n1 ? n3 : n1;
      survivors = [n1, n3];
      await waitFor(async () => (await activeCopies(fsId)).length === 1, {
        timeoutMs: 60_000,
        what: 'the new master’s copy active',
      });
      assert.deepEqual(await activeCopies(fsId), [newMaster.nodeId], 'one active copy: the new master’s');
      const history = await commitIds(newMaster, 'vital');
      for (const c of acknowledged) {
        assert.ok(history.includes(c.id), `acknowledged commit ${c.id} is in the new master's history`);
        assert.equal(await fileHash(committedFile(newMaster, fsId, c.id, 'DATA')), c.hash, `commit ${c.id} has its content`);
      }
      assert.equal(history.at(-1), acknowledged.at(-1)?.id, 'the history ends at the last acknowledged commit');
      const live = await procure(newMaster, 'vital');
      assert.equal(await fileHash(join(live, 'DATA')), acknowledged.at(-1)?.hash, 'its live data is the newest commit');
      // A new commit on the new master (sync: the other live node confirms it).
      const hash = await writeRandom(newMaster, 'vital', 'DATA');
      const made = await commit(newMaster, 'vital', 'on the new master');
      assert.ok((await heldOn(other, fsId)).has(made), 'the other live node holds it when Commit returns');
      assert.equal(await fileHash(committedFile(other, fsId, made, 'DATA')), hash);
      assert.deepEqual((await commitIds(other, 'vital')).at(-1), made);
      assert.equal((await failedOverLines(newMaster)).filter((l) => l.includes(fsId)).length, 1);
    }),
  );

  test(
    'a pinned dot on the gone host does not move; unpinned, it fails over',
    logged(async () => {
      assert.ok(pinnedDot && survivors.length === 2, 'the host-gone test ran');
      const { fsId, commitId, hash } = pinnedDot;
      // Every live node's sweep saw the branch and left it (logged once per node).
      await waitFor(
        async () =>
          (
            await Promise.all(
              survivors.map(async (n) =>
                (await n.log()).split('\n').some((l) => l.includes('of a pinned branch is gone') && l.includes(fsId)),
              ),
            )
          ).every(Boolean),
        { timeoutMs: 60_000, what: 'both live nodes to pass over the pinned branch' },
      );
      assert.equal((await masterKv(fsId)).node, n2.nodeId, 'the pinned branch still names the gone node');
      // dm dot show answers from what the live nodes know, and says what the branch waits for.
      const shown = await n1.ok(['dot', 'show', 'anchored']);
      assert.match(shown, /^Commits: 2$/m, shown);
      assert.match(shown, /Pinned to its node: no automatic failover \(set on the dot\)/);
      assert.ok(
        shown.includes(
          `Master node ${n2.nodeId} is gone (its lease expired): the branch is pinned to it and waits for it, or for dm dot smash-branch-master`,
        ),
        shown,
      );
      assert.match(shown, new RegExp(`server ${n2.nodeId} \\[MASTER\\] \\(status: gone \\(its lease expired\\)`));
      assert.match(await n1.ok(['dot', 'show', '-H', 'anchored']), new RegExp(`^masterGone\tmaster\t${n2.nodeId}$`, 'm'));
      // The original client's calls for dm dot show, through node 3 (no copy needed for these).
      const call = { Namespace: 'admin', Name: 'anchored', Branch: '' };
      const id = await n3.admin.call('Lookup', call);
      const volume = await n3.admin.call('Get', id);
      assert.equal(volume.Master, n2.nodeId);
      assert.equal(volume.ServerStates[n2.nodeId], 'gone');
      assert.equal(volume.CommitCount, 2);
      assert.deepEqual(await n3.admin.call('Branches', { Namespace: 'admin', Name: 'anchored' }), []);
      assert.deepEqual(await n3.admin.call('Containers', call), []);
      const latency = await n3.admin.call('GetReplicationLatencyForBranch', call);
      assert.deepEqual(latency[n2.nodeId], []);
      // dm log's call: from node 3's own copy.
      assert.equal((await n3.admin.call('Commits', call)).at(-1)?.Id, commitId);
      assert.deepEqual(await n3.admin.call('GetPinned', { Namespace: 'admin', Name: 'anchored', Branch: '' }), {
        Pinned: true,
        Source: 'dot',
        DotPinned: true,
        BranchPinned: false,
      });
      // Bad input: named, coded, nothing changed.
      const missing = await n1.admin
        .call('SetBranchPinned', { Namespace: 'admin', Name: 'no-such-dot', Branch: '', WholeDot: true, Pinned: false })
        .catch((e: unknown) => e);
      assert.ok(isDotmeshError(missing) && missing.code === 'DOT_NOT_FOUND', String(missing));
      const badBranch = await n1.admin
        .call('SetBranchPinned', { Namespace: 'admin', Name: 'anchored', Branch: 'nope', WholeDot: false, Pinned: false })
        .catch((e: unknown) => e);
      assert.ok(isDotmeshError(badBranch) && badBranch.code === 'BRANCH_NOT_FOUND', String(badBranch));
      assert.match(await n1.fails(['dot', 'pin', 'anchored', 'extra']), /at most one dot/);
      assert.equal((await masterKv(fsId)).node, n2.nodeId);

      assert.match(await n1.ok(['dot', 'unpin', 'anchored']), /is not pinned: it fails over/);
      const master = await waitFor(
        async () => {
          const m = (await masterKv(fsId)).node;
          return m === n2.nodeId ? undefined : m;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: 'the unpinned branch to fail over' },
      );
      const newMaster = survivors.find((n) => n.nodeId === master);
      assert.ok(newMaster, `the new master ${master} is a live node`);
      assert.equal(await fileHash(committedFile(newMaster, fsId, commitId, 'DATA')), hash);
      await appendFile(join(await procure(newMaster, 'anchored'), 'DATA'), 'more');
      const made = await commit(newMaster, 'anchored', 'after unpinning');
      assert.deepEqual((await commitIds(newMaster, 'anchored')).slice(-2), [commitId, made]);
    }),
  );
});
