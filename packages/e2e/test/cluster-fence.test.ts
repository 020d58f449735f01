import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import type { CommitItem } from '@dotmesh/rpc';
import {
  Cleanup,
  type DotmeshNode,
  type DotmeshTestCluster,
  skipUnless,
  spawnTracked,
  startDotmeshCluster,
  waitFor,
} from '@dotmesh/testkit';
import {
  commit,
  commitsOf,
  committedFile,
  fileHash,
  heldOn,
  logged,
  lookup,
  procure,
  readOnly,
  setLinks,
  untilDivergedEverywhere,
  untilMasterEverywhere,
  writeRandom,
} from './cluster-helpers.ts';

/**
 * Never two writers, and a node that comes back (docs/cluster.md), on real servers and a real
 * etcd in network namespaces: a master cut off from etcd (its links down) makes the live data
 * of its branches read-only before its lease can have expired — a process writing into the dot
 * gets EROFS, the API refuses commits saying why — and writable again once it is back and
 * still the master; a node whose branch another node masters now puts what it held (its
 * divergent commits, its uncommitted data as a `stashing` commit) on a `-DIVERGED-` branch of
 * the cluster, loses nothing and becomes a replica. Generous timeouts only: how fast lives in
 * the benchmarks.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

const WAIT = { timeoutMs: 90_000, intervalMs: 200 } as const;
const ids = (commits: readonly CommitItem[]) => commits.map((c) => c.Id);

describe('never two writers: a master cut off from etcd turns read-only', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  before(async () => {
    // One node: nothing can take its branches over while it is cut off, so the master key stays its own.
    cluster = await startDotmeshCluster({ cleanup, nodes: 1 });
    [n1] = cluster.nodes as [DotmeshNode];
  });
  after(() => cleanup.run());

  test(
    'a writer gets EROFS, commits are refused with the reason; back in contact and still master: writable, commits accepted',
    logged(
      () => cluster,
      async () => {
        await writeRandom(n1, 'fenced', 'A');
        const first = await commit(n1, 'fenced', 'before the cut');
        const fsId = await lookup(n1, 'fenced');
        const dir = await procure(n1, 'fenced');
        const log = join(dir, 'log');
        // A process writing into the dot, opening the file for each line as `>>` does.
        const writer = spawnTracked('sh', ['-c', `while echo line >> '${log}'; do sleep 0.05; done; exit 1`], { cleanup });
        await waitFor(async () => (await readFile(log, 'utf8').catch(() => '')).length > 0, { ...WAIT, what: 'the writer' });
        assert.equal(await readOnly(n1, fsId), false);

        await setLinks(n1, 'down');
        const exit = await writer.exited;
        assert.notEqual(exit.code, 0);
        assert.match(writer.output(), /Read-only file system/, 'the writer was refused with EROFS');
        assert.equal(await readOnly(n1, fsId), true, 'btrfs property get says ro=true');
        const fenceLine = (await n1.log())
          .split('\n')
          .find((l) => l.includes('lost contact with the cluster store: admin/fenced@master is read-only'));
        assert.ok(fenceLine, 'the log says why');
        const remaining = (JSON.parse(fenceLine) as { remainingMs: number }).remainingMs;
        assert.ok(remaining > 0, `fenced before the lease deadline (${remaining} ms left), so before etcd can expire the lease`);
        const refused = await commit(n1, 'fenced', 'while cut off').then(
          () => assert.fail('a commit was accepted while the node was cut off'),
          (e: unknown) => e,
        );
        assert.ok(isDotmeshError(refused) && refused.code === 'UNAVAILABLE', String(refused));
        assert.match(refused.message, /lost contact with the cluster store at .*: admin\/fenced@master is read-only until/);
        const written = await readFile(log, 'utf8');

        await setLinks(n1, 'up');
        await waitFor(async () => !(await readOnly(n1, fsId)), { ...WAIT, what: 'the branch to be writable again' });
        await waitFor(
          async () => (await n1.log()).includes('in contact with the cluster store again: admin/fenced@master is writable'),
          {
            ...WAIT,
            what: 'the log line of the way back',
          },
        );
        const hash = await writeRandom(n1, 'fenced', 'B');
        const second = await waitFor(
          () =>
            commit(n1, 'fenced', 'after the cut').catch((e: unknown) => {
              // The store may still be coming back (UNAVAILABLE): tried again.
              if (isDotmeshError(e) && e.code === 'UNAVAILABLE') return '';
              throw e;
            }),
          { ...WAIT, what: 'a commit to be accepted' },
        );
        assert.deepEqual(ids(await commitsOf(n1, 'fenced')).slice(-2), [first, second]);
        assert.equal(await fileHash(committedFile(n1, fsId, second, 'B')), hash);
        assert.equal(
          await readFile(committedFile(n1, fsId, second, 'log'), 'utf8'),
          written,
          'what was written before the fence is kept',
        );
      },
    ),
  );
});

describe('a node comes back: what it held goes to a -DIVERGED- branch', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  before(async () => {
    cluster = await startDotmeshCluster({ cleanup, nodes: 2 });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());

  /**
   * A dot made on node 1 whose commits answer at once (`async`: the other node may be down),
   * with file A in a commit both nodes hold.
   */
  async function committedOnBoth(name: string): Promise<{ fsId: string; hashA: string; common: string }> {
    await procure(n1, name);
    await n1.ok(['dot', 'set-durability', name, 'async']);
    const fsId = await lookup(n1, name);
    const hashA = await writeRandom(n1, name, 'A');
    const common = await commit(n1, name, 'on node 1');
    await waitFor(async () => (await heldOn(cluster, n2, fsId)).has(common), { ...WAIT, what: 'node 2 to hold the commit' });
    return { fsId, hashA, common };
  }

  test(
    'Divergence (the original’s TestTwoNodesSameCluster): masters forced on both nodes, divergent commits on each',
    logged(
      () => cluster,
      async () => {
        const { fsId, hashA, common } = await committedOnBoth('div');

        await n1.kill9();
        await n2.ok(['dot', 'smash-branch-master', 'div', 'master']);
        const hashB = await writeRandom(n2, 'div', 'B');
        const onN2 = await commit(n2, 'div', 'on node 2 while node 1 is down');
        await n2.kill9();

        await n1.start();
        await n1.ok(['dot', 'smash-branch-master', 'div', 'master']);
        await untilMasterEverywhere([n1], 'div', n1.nodeId);
        const hashC = await writeRandom(n1, 'div', 'C');
        const onN1 = await waitFor(() => commit(n1, 'div', 'on node 1 while node 2 is down'), {
          ...WAIT,
          what: 'node 1 to take commits as the master',
        });
        await n2.start();

        const diverged = await untilDivergedEverywhere([n1, n2], 'div');
        assert.match(diverged, /^master-DIVERGED-/);
        for (const node of [n1, n2]) {
          await waitFor(async () => ids(await commitsOf(node, 'div')).includes(onN1), {
            ...WAIT,
            what: `node ${node.index} to list ${onN1}`,
          });
          const master = ids(await commitsOf(node, 'div'));
          assert.ok(
            master.includes(common) && master.includes(onN1) && !master.includes(onN2),
            `master branch through node ${node.index}`,
          );
          const side = ids(await commitsOf(node, 'div', diverged));
          assert.ok(
            side.includes(common) && side.includes(onN2) && !side.includes(onN1),
            `${diverged} through node ${node.index}`,
          );
        }
        // Every commit with its content, on the node that made it.
        assert.equal(await fileHash(committedFile(n1, fsId, common, 'A')), hashA);
        assert.equal(await fileHash(committedFile(n2, fsId, onN2, 'B')), hashB);
        assert.equal(await fileHash(committedFile(n1, fsId, onN1, 'C')), hashC);
        // No node is in a failed state: both take commits on both branches.
        await waitFor(async () => (await heldOn(cluster, n2, fsId)).has(onN1), {
          ...WAIT,
          what: 'node 2 to replicate the master branch',
        });
        const viaN2 = await commit(n2, 'div', 'through node 2 afterwards');
        const onSide = await commit(n1, 'div', 'on the diverged branch', diverged);
        for (const node of [n1, n2]) {
          assert.ok(ids(await commitsOf(node, 'div')).includes(viaN2));
          assert.ok(ids(await commitsOf(node, 'div', diverged)).includes(onSide));
        }
      },
    ),
  );

  test(
    'a node whose branch was forced elsewhere while it was cut off comes back: its uncommitted data is a stashing commit on the -DIVERGED- branch',
    logged(
      () => cluster,
      async () => {
        const { fsId, hashA, common } = await committedOnBoth('back');
        const hashU = await writeRandom(n1, 'back', 'U'); // never committed on node 1

        await setLinks(n1, 'down');
        await waitFor(() => readOnly(n1, fsId), { ...WAIT, what: 'node 1 to make the branch read-only' });
        await n2.ok(['dot', 'smash-branch-master', 'back', 'master']);
        const hashB = await writeRandom(n2, 'back', 'B');
        const onN2 = await commit(n2, 'back', 'on node 2 while node 1 is cut off');
        await setLinks(n1, 'up');

        const diverged = await untilDivergedEverywhere([n1, n2], 'back');
        const side = await commitsOf(n2, 'back', diverged);
        const stashing = side.at(-1)!;
        assert.equal(stashing.Metadata.type, 'stashing', 'the uncommitted data was committed as `stashing`');
        assert.deepEqual(ids(side).slice(0, -1), ids(await commitsOf(n1, 'back', diverged)).slice(0, -1));
        assert.ok(ids(side).includes(common) && !ids(side).includes(onN2));
        assert.equal(await fileHash(committedFile(n1, fsId, stashing.Id, 'U')), hashU, 'the uncommitted file, hash for hash');
        assert.equal(await fileHash(committedFile(n1, fsId, stashing.Id, 'A')), hashA);
        // Node 1 is a replica of the master branch now, and replication goes on.
        await waitFor(async () => (await heldOn(cluster, n1, fsId)).has(onN2), {
          ...WAIT,
          what: 'node 1 to receive the new master’s commit',
        });
        assert.equal(await fileHash(committedFile(n1, fsId, onN2, 'B')), hashB);
        await untilMasterEverywhere([n1, n2], 'back', n2.nodeId);
        const after = await commit(n1, 'back', 'through node 1 afterwards');
        assert.ok(ids(await commitsOf(n2, 'back')).includes(after));
      },
    ),
  );
});
