import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster, waitFor } from '@dotmesh/testkit';
import {
  commit,
  commitIds,
  committedFile,
  fileHash,
  heldOn as heldBy,
  logged as loggedOn,
  lookup,
  writeRandom,
} from './cluster-helpers.ts';

/**
 * Durability per branch on two real nodes (servers on their own pools and hosts, one etcd on a
 * third): a Commit on a `sync` branch (the default with two live nodes) returns once the other
 * node holds the commit — its store keys and its replica's files say so the moment the Commit
 * returns; an `async` one returns while the other node is cut off (`ip link set down`) and the
 * commit reaches it when the link is back; a `sync` Commit with the other node cut off answers
 * NOT_REPLICATED after the configured timeout, and the commit it made stays and reaches the
 * other node later. The setting is stored cluster-wide: the other node reads it too.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

/** syncCommitTimeoutMs of both nodes. */
const SYNC_TIMEOUT_MS = 4000;

describe('sync and async durability per branch', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  before(async () => {
    cluster = await startDotmeshCluster({
      cleanup,
      nodes: 2,
      // A lease far longer than any cut-off below: node 2 stays a live node of the cluster
      // throughout, so the outcomes come from the cut link, not from node 2 leaving.
      nodeLeaseTtlSeconds: 60,
      extraConfig: {
        syncCommitTimeoutMs: SYNC_TIMEOUT_MS,
        replicationSweepMs: 2000,
        transferIdleTimeoutMs: 5000,
        transferBackoffMs: 500,
      },
    });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());

  const logged = (body: () => Promise<void>) => loggedOn(() => cluster, body);
  const heldOn = (node: DotmeshNode, fsId: string) => heldBy(cluster, node, fsId);

  /** Runs `body` with node 2's links down (it reaches neither node 1 nor etcd), then brings them up. */
  async function cutOff<T>(node: DotmeshNode, body: () => Promise<T>): Promise<T> {
    for (const dev of node.host.devices) await node.host.exec('ip', ['link', 'set', dev, 'down']);
    try {
      return await body();
    } finally {
      for (const dev of node.host.devices) await node.host.exec('ip', ['link', 'set', dev, 'up']);
    }
  }

  async function untilHeld(node: DotmeshNode, fsId: string, commitId: string): Promise<void> {
    await waitFor(async () => (await heldOn(node, fsId)).has(commitId), {
      timeoutMs: 120_000,
      what: `node ${node.index} to hold commit ${commitId} of ${fsId}`,
    });
  }

  test(
    'sync (the default with two live nodes, then set on the dot): the other node holds the commit when Commit returns',
    logged(async () => {
      const data = await writeRandom(n1, 'syncdot', 'DATA');
      const id = await lookup(n1, 'syncdot');
      const shown = await n1.ok(['dot', 'show', 'syncdot']);
      assert.match(shown, /\* master \([^)]+\)\n {3}Durability: sync \(the cluster's default\)/);
      const first = await commit(n1, 'syncdot', 'by default');
      assert.ok((await heldOn(n2, id)).has(first), 'node 2 advertises the commit as soon as Commit returned');
      assert.equal(await fileHash(committedFile(n2, id, first, 'DATA')), data, "node 2's replica has the committed data");

      assert.match(await n1.ok(['dot', 'set-durability', 'syncdot', 'sync']), /Durability of dot syncdot set to sync\./);
      // Stored cluster-wide: node 2 reads the same setting.
      assert.deepEqual(await n2.admin.call('GetDurability', { Namespace: 'admin', Name: 'syncdot', Branch: '' }), {
        Durability: 'sync',
        Source: 'dot',
        DotDurability: 'sync',
        BranchDurability: '',
      });
      const data2 = await writeRandom(n1, 'syncdot', 'DATA');
      const second = await commit(n1, 'syncdot', 'set on the dot');
      assert.ok((await heldOn(n2, id)).has(second), 'node 2 advertises the second commit as soon as Commit returned');
      assert.equal(await fileHash(committedFile(n2, id, second, 'DATA')), data2);
    }),
  );

  test(
    'async: Commit returns while the only other node is cut off; the commit reaches it once the link is back',
    logged(async () => {
      await writeRandom(n1, 'asyncdot', 'DATA');
      await commit(n1, 'asyncdot', 'before');
      const id = await lookup(n1, 'asyncdot');
      assert.match(await n1.ok(['dot', 'set-durability', 'asyncdot', 'async']), /set to async/);
      assert.match(await n2.ok(['dot', 'show', 'asyncdot']), /Durability: async \(set on the dot\)/);
      const data = await writeRandom(n1, 'asyncdot', 'DATA');
      const made = await cutOff(n2, async () => {
        const made = await commit(n1, 'asyncdot', 'while node 2 is cut off');
        assert.ok(!(await heldOn(n2, id)).has(made), 'node 2 could not hold it yet');
        return made;
      });
      assert.equal((await commitIds(n1, 'asyncdot')).at(-1), made);
      await untilHeld(n2, id, made);
      assert.equal(await fileHash(committedFile(n2, id, made, 'DATA')), data);
    }),
  );

  test(
    'sync with the other node cut off: NOT_REPLICATED after the timeout; the commit stays and reaches it later',
    logged(async () => {
      const id = await lookup(n1, 'syncdot');
      assert.match(
        await n1.ok(['dot', 'set-durability', '--branch', 'master', 'syncdot', 'sync']),
        /Durability of branch master of syncdot set to sync\./,
      );
      const data = await writeRandom(n1, 'syncdot', 'DATA');
      const before = await commitIds(n1, 'syncdot');
      const { error, tookMs } = await cutOff(n2, async () => {
        const started = Date.now();
        const error = await commit(n1, 'syncdot', 'unconfirmed').then(
          () => undefined,
          (e: unknown) => e,
        );
        return { error, tookMs: Date.now() - started };
      });
      assert.ok(isDotmeshError(error), `a DotmeshError, not ${String(error)}`);
      assert.equal(error.code, 'NOT_REPLICATED', error.message);
      assert.match(
        error.message,
        new RegExp(`is held by node ${n1.nodeId} only: no other node confirmed holding it within ${SYNC_TIMEOUT_MS} ms`),
      );
      assert.ok(tookMs >= SYNC_TIMEOUT_MS - 100, `the commit waited the timeout (${tookMs} ms)`);
      assert.ok(tookMs < SYNC_TIMEOUT_MS + 20_000, `and answered soon after it (${tookMs} ms)`);
      // Made and kept on node 1, whose replication goes on: node 2 gets it once reachable.
      const after = await commitIds(n1, 'syncdot');
      assert.equal(after.length, before.length + 1);
      const made = after.at(-1)!;
      assert.equal(error.data?.commitId, made);
      await untilHeld(n2, id, made);
      assert.equal(await fileHash(committedFile(n2, id, made, 'DATA')), data);
    }),
  );
});
