import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster, waitFor } from '@dotmesh/testkit';
import {
  commit,
  commitIds,
  committedFile,
  fileHash,
  heldOn,
  logged,
  lookup,
  masterKey,
  procure,
  setLinks,
  sha256,
} from './cluster-helpers.ts';

/**
 * A replica receiving a commit from the master when the master's host goes (its links down in
 * the middle of the stream): once the master's lease expired, the replica cuts the receive at
 * once instead of waiting for the stream's idle timeout, the half-received commit is discarded
 * (never listed), and the branch fails over to the replica, which takes commits — all well
 * before the idle timeout (set to 2 minutes here) would have ended the receive.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

const IDLE_TIMEOUT_MS = 120_000;
const WAIT = { timeoutMs: 90_000, intervalMs: 200 } as const;

describe('a receive from a node that is gone is cut short', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  before(async () => {
    cluster = await startDotmeshCluster({
      cleanup,
      nodes: 2,
      extraConfig: { transferIdleTimeoutMs: IDLE_TIMEOUT_MS, failoverSweepMs: 1000, replicationSweepMs: 2000 },
    });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());

  test(
    'the master host goes mid-stream: the replica drops the stream at the lease expiry, fails the branch over and takes commits',
    logged(
      () => cluster,
      async () => {
        const mount = await procure(n1, 'slow');
        // async: the Commit answers at once, the replication runs behind it.
        await n1.ok(['dot', 'set-durability', 'slow', 'async']);
        const fsId = await lookup(n1, 'slow');
        await writeFile(join(mount, 'SMALL'), 'first');
        const first = await commit(n1, 'slow', 'replicated');
        await waitFor(async () => (await heldOn(cluster, n2, fsId)).has(first), { ...WAIT, what: 'node 2 to hold it' });

        // Node 1's link slowed to 2 Mbit/s: the next commit (4 MiB) takes about 16 s to send.
        for (const dev of n1.host.devices) {
          await n1.host.exec('tc', [
            'qdisc',
            'add',
            'dev',
            dev,
            'root',
            'tbf',
            'rate',
            '2mbit',
            'burst',
            '32kbit',
            'latency',
            '100ms',
          ]);
        }
        await writeFile(join(mount, 'BIG'), randomBytes(4 * 1024 * 1024));
        const big = await commit(n1, 'slow', 'half-sent');
        const open = `peerTransfers.open.${n1.nodeId}`;
        await waitFor(async () => Number((await n2.admin.call('DumpInternalState', 'peerTransfers'))[open] ?? 0) > 0, {
          ...WAIT,
          what: 'node 2 to receive from node 1',
        });
        await new Promise((r) => setTimeout(r, 1000));
        assert.ok(!(await heldOn(cluster, n2, fsId)).has(big), 'the big commit is still on its way');

        const cutAt = Date.now();
        await setLinks(n1, 'down');
        const cutLine = await waitFor(
          async () =>
            (await n2.log()).split('\n').find((l) => l.includes(`node ${n1.nodeId} is gone: cut the transfers with it at once`)),
          { ...WAIT, what: 'node 2 to cut the receive from node 1' },
        );
        const cut = JSON.parse(cutLine) as { time: number; connections: number };
        assert.ok(cut.connections >= 1);
        assert.ok(cut.time - cutAt < IDLE_TIMEOUT_MS / 3, `the receive was cut ${cut.time - cutAt} ms after the links went down`);

        await waitFor(async () => (await masterKey(cluster, fsId)) === n2.nodeId, { ...WAIT, what: 'the branch to fail over' });
        const live = await waitFor(() => procure(n2, 'slow').catch(() => undefined), { ...WAIT, what: 'node 2’s mount' });
        const data = randomBytes(64 * 1024);
        await writeFile(join(live, 'AFTER'), data);
        const made = await commit(n2, 'slow', 'on the new master');
        const acceptedMs = Date.now() - cutAt;
        assert.ok(acceptedMs < IDLE_TIMEOUT_MS / 2, `a commit was accepted on node 2 ${acceptedMs} ms after the cut`);
        // The half-received commit is nowhere on node 2: not listed, not advertised.
        const listed = await commitIds(n2, 'slow');
        assert.deepEqual(listed.slice(-2), [first, made]);
        assert.ok(!listed.includes(big));
        assert.ok(!(await heldOn(cluster, n2, fsId)).has(big));
        assert.equal(await fileHash(committedFile(n2, fsId, made, 'AFTER')), sha256(data));
        const state = (await n2.admin.call('DumpInternalState', 'peerTransfers')) as Record<string, string>;
        assert.ok(Number(state['peerTransfers.cut']) >= 1);
        assert.equal(state[open], undefined, 'no connection with node 1 is left');
      },
    ),
  );
});
