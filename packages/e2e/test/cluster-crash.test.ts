import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster, waitFor } from '@dotmesh/testkit';
import {
  activeCopies,
  commit,
  commitIds,
  commitsOf,
  fileHash,
  lookup,
  masterKey,
  procure,
  writeRandom,
} from './cluster-helpers.ts';

/**
 * kill -9 on a cluster of two real nodes: the server kills itself (SIGKILL) at each failpoint
 * of the mutation path — with the call sent to the branch's master node, and sent to the other
 * node, which passes it on — and at each failpoint of a handoff on the old master node; the
 * new node is killed at each step of receiving the branch. After a restart, for the branch:
 * exactly one master (one master key, one active copy, every node naming it), every commit
 * acknowledged before the crash in Commits (through either node), and the branch usable (a
 * commit through either node succeeds).
 *
 * The failpoint names are the server's FAILPOINTS (packages/server/src/failpoints.ts); e2e
 * tests do not import the server, so they are listed here, and `SetDebugFlag` refuses a name
 * the server does not know.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);
const FAILPOINTS = {
  create: ['create.after-volume', 'create.after-initial-commit', 'create.after-store'],
  commit: ['commit.after-snapshot', 'commit.after-store'],
  branch: ['branch.after-volume', 'branch.after-store'],
  rollback: ['rollback.after-intent', 'rollback.after-store', 'rollback.after-swap', 'rollback.after-label', 'rollback.after-gc'],
  delete: ['delete.after-intent', 'delete.after-store', 'delete.after-branches'],
  handoff: ['handoff.after-commit', 'handoff.after-send', 'handoff.after-move'],
  takeover: ['takeover.after-store', 'takeover.after-swap'],
  receive: ['receive.after-intent', 'receive.after-import', 'receive.after-label'],
} as const;

const slug = (fp: string) => fp.replace(/\W/g, '-');

describe('kill -9 at every failpoint, on a cluster of two nodes', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let a: DotmeshNode;
  let b: DotmeshNode;
  before(async () => {
    // One attempt per transfer: a handoff cut by a crash fails at once rather than being retried.
    // No background replication: a failpoint fires in the first operation that reaches it, and
    // replication would reach the receive and transfer ones before the handoff under test.
    cluster = await startDotmeshCluster({ cleanup, nodes: 2, extraConfig: { transferAttempts: 1, replicate: false } });
    [a, b] = cluster.nodes as [DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());
  const nodes = () => [a, b];

  /** Arms `fp` to crash `victim`, runs `op` (which must fail), restarts `victim`. */
  async function crashAt(victim: DotmeshNode, fp: string, op: () => Promise<unknown>): Promise<void> {
    assert.equal(await victim.admin.call('SetDebugFlag', { FlagName: fp, FlagValue: 'crash' }), 'off');
    const error = await op().then(
      () => assert.fail(`the call survived the crash at ${fp}`),
      (e: unknown) => e,
    );
    assert.ok(isDotmeshError(error) && error.code === 'UNAVAILABLE', `a lost connection, not ${String(error)}`);
    await victim.exited();
    await victim.start();
  }

  /**
   * The branch after a crash: one master key naming a live node, one active copy (that
   * node's), every node naming that master; every acknowledged commit listed (through each
   * node) with its metadata; a commit through each node succeeds.
   */
  async function healthy(name: string, branch: string, acknowledged: readonly string[]): Promise<DotmeshNode> {
    const fsId = await lookup(b, name, branch);
    const key = await masterKey(cluster, fsId);
    const master = nodes().find((n) => n.nodeId === key);
    assert.ok(master, `the master key of ${name}@${branch || 'master'} names a node of the cluster: ${key}`);
    for (const n of nodes()) {
      await waitFor(
        async () =>
          ((await n.admin.call('DumpInternalState', `masters.${fsId}`)) as Record<string, string>)[`masters.${fsId}`] === key,
        { timeoutMs: 20_000, what: `node ${n.index} to name ${key} the master of ${fsId}` },
      );
    }
    assert.deepEqual(await activeCopies(cluster, fsId), [key], 'exactly one active copy: the master’s');
    for (const n of nodes()) {
      const listed = await commitsOf(n, name, branch);
      const ids = listed.map((c) => c.Id);
      for (const id of acknowledged)
        assert.ok(ids.includes(id), `commit ${id} acknowledged before the crash is listed by node ${n.index}`);
      for (const c of listed)
        for (const k of ['message', 'author', 'timestamp']) assert.ok(k in c.Metadata, `commit ${c.Id} has ${k}`);
    }
    for (const n of nodes()) {
      const probe = await commit(n, name, `probe through node ${n.index}`, branch);
      for (const m of nodes()) assert.ok((await commitIds(m, name, branch)).includes(probe));
    }
    return master;
  }

  const exists = async (name: string) =>
    (await b.admin.call('Exists', { Namespace: 'admin', Name: name, Branch: '' })) !== '' &&
    (await a.admin.call('Exists', { Namespace: 'admin', Name: name, Branch: '' })) !== '';

  for (const fp of FAILPOINTS.create) {
    // Create runs on the node that receives it (never passed on): node 2 is the other node.
    test(`create crashes at ${fp}`, async () => {
      const name = `c-${slug(fp)}`;
      await crashAt(a, fp, () => a.admin.call('Create', { Namespace: 'admin', Name: name }));
      // Before the initial commit the dot never existed; after it, it is whole.
      const made = fp !== 'create.after-volume';
      await waitFor(async () => (await exists(name)) === made, { timeoutMs: 20_000, what: `${name} to exist: ${made}` });
      if (!made) await a.admin.call('Create', { Namespace: 'admin', Name: name });
      const master = await healthy(name, '', []);
      assert.equal(master, a, 'the creating node masters it');
    });
  }

  /** Mutations of a dot that node 1 masters, sent to node 1 itself or to node 2 (passed on). */
  for (const [mode, sender] of [
    ['sent to the master node', () => a],
    ['sent to the other node and passed on', () => b],
  ] as const) {
    for (const fp of FAILPOINTS.commit) {
      test(`commit ${mode} crashes at ${fp}`, async () => {
        const name = `m-${slug(fp)}-${sender().index}`;
        const hash = await writeRandom(a, name, 'data');
        const before = await commitIds(a, name);
        await crashAt(a, fp, () =>
          sender().admin.call('Commit', {
            Namespace: 'admin',
            Name: name,
            Branch: '',
            Message: 'crashy',
            Metadata: { '#commit-id': `crash-${sender().index}-${slug(fp)}` },
          }),
        );
        // The snapshot is durable before the first failpoint: recovery adopts the commit.
        assert.deepEqual(await commitIds(b, name), [...before, `crash-${sender().index}-${slug(fp)}`]);
        assert.equal(await fileHash(join(await procure(a, name), 'data')), hash);
        await healthy(name, '', before);
      });
    }

    for (const fp of FAILPOINTS.branch) {
      test(`branch ${mode} crashes at ${fp}`, async () => {
        const name = `b-${slug(fp)}-${sender().index}`;
        await writeRandom(a, name, 'data');
        const one = await commit(a, name, 'one');
        await crashAt(a, fp, () =>
          sender().admin.call('Branch', {
            Namespace: 'admin',
            Name: name,
            SourceBranch: 'master',
            NewBranchName: 'nb',
            SourceCommitId: one,
          }),
        );
        await waitFor(async () => (await b.admin.call('Branches', { Namespace: 'admin', Name: name })).includes('nb'), {
          timeoutMs: 20_000,
          what: `branch nb of ${name} (completed at restart)`,
        });
        await healthy(name, '', [one]);
        await healthy(name, 'nb', [one]);
      });
    }

    for (const fp of FAILPOINTS.rollback) {
      test(`rollback ${mode} crashes at ${fp}`, async () => {
        const name = `r-${slug(fp)}-${sender().index}`;
        const path = await procure(a, name);
        await writeFile(join(path, 'data'), 'one');
        const one = await commit(a, name, 'one');
        await writeFile(join(path, 'data'), 'two');
        await commit(a, name, 'two');
        await crashAt(a, fp, () =>
          sender().admin.call('Rollback', { Namespace: 'admin', Name: name, Branch: '', SnapshotId: one }),
        );
        // The intent is recorded before any data changes: recovery completes the rollback.
        assert.equal((await commitIds(b, name)).at(-1), one);
        assert.equal(await readFile(join(await procure(a, name), 'data'), 'utf8'), 'one');
        const initial = (await commitIds(a, name))[0]!;
        await healthy(name, '', [initial, one]);
      });
    }

    for (const fp of FAILPOINTS.delete) {
      test(`delete ${mode} crashes at ${fp}`, async () => {
        const name = `d-${slug(fp)}-${sender().index}`;
        await writeRandom(a, name, 'data');
        const one = await commit(a, name, 'one');
        await a.admin.call('Branch', {
          Namespace: 'admin',
          Name: name,
          SourceBranch: 'master',
          NewBranchName: 'x',
          SourceCommitId: one,
        });
        const ids = [await lookup(a, name), await lookup(a, name, 'x')];
        await crashAt(a, fp, () => sender().admin.call('Delete', { Namespace: 'admin', Name: name }));
        // The intent is recorded first: recovery finishes the delete, everywhere.
        await waitFor(async () => (await exists(name)) === false, {
          timeoutMs: 20_000,
          what: `${name} to be gone`,
        });
        // Left of it in etcd: its tombstones only (what its master advertised of it, sizes and
        // containers, goes with it, and is not written back by that master's next round).
        const left = (await cluster.etcd.keys('dotmesh.io/')).filter((kv) => ids.some((id) => kv.key.includes(id)));
        assert.deepEqual(
          left.filter((kv) => !kv.key.includes('/filesystems/deleted/')),
          [],
          'nothing but tombstones is left of it in etcd',
        );
        assert.equal(left.filter((kv) => kv.key.includes('/filesystems/deleted/')).length, ids.length, 'a tombstone per branch');
        await a.admin.call('Create', { Namespace: 'admin', Name: name });
        await healthy(name, '', []);
      });
    }
  }

  for (const fp of FAILPOINTS.handoff) {
    test(`handoff crashes on the old master at ${fp}`, async () => {
      const name = `h-${slug(fp)}`;
      await writeRandom(a, name, 'committed');
      const one = await commit(a, name, 'one');
      const dirty = await writeRandom(a, name, 'uncommitted');
      // Procure on node 2 asks node 1 to hand the branch over; node 1 dies on the way.
      await crashAt(a, fp, () => procure(b, name));
      const master = await healthy(name, '', [one]);
      // Until the master key moved nothing changed; after it, node 2 has every commit.
      assert.equal(master, fp === 'handoff.after-move' ? b : a, 'the master key says who masters it');
      // The uncommitted data was committed (type migration) before the first failpoint.
      const history = await commitsOf(b, name);
      const after = history[history.findIndex((c) => c.Id === one) + 1];
      assert.equal(after?.Metadata.type, 'migration', 'the migration commit survived, right after the last commit');
      // The move completes when asked again; the data is whole on node 2.
      assert.equal(await fileHash(join(await procure(b, name), 'uncommitted')), dirty);
      assert.equal(await masterKey(cluster, await lookup(b, name)), b.nodeId);
    });
  }

  for (const fp of FAILPOINTS.takeover) {
    test(`the new node is killed taking the branch over, after the key moved, at ${fp}`, async () => {
      const name = `t-${slug(fp)}`;
      const committed = await writeRandom(a, name, 'committed');
      const one = await commit(a, name, 'one');
      const dirty = await writeRandom(a, name, 'uncommitted');
      await crashAt(b, fp, () => procure(b, name));
      // The key moved before node 2 died: at its start it takes the branch over by itself (it
      // logs that only once the takeover is whole), before anyone mounts it there.
      const fsId = await lookup(a, name);
      assert.equal(await masterKey(cluster, fsId), b.nodeId);
      await waitFor(async () => (await b.log()).split('\n').some((l) => l.includes('took over a branch') && l.includes(fsId)), {
        timeoutMs: 20_000,
        what: `node 2 to take ${fsId} over at its start`,
      });
      assert.equal(await healthy(name, '', [one]), b);
      // Its live data is the head: what was committed, and what was uncommitted on node 1.
      const path = await procure(b, name);
      assert.equal(await fileHash(join(path, 'committed')), committed);
      assert.equal(await fileHash(join(path, 'uncommitted')), dirty);
    });
  }

  for (const fp of FAILPOINTS.receive) {
    test(`the new node is killed mid-handoff, receiving the branch, at ${fp}`, async () => {
      const name = `n-${slug(fp)}`;
      await writeRandom(a, name, 'committed');
      const one = await commit(a, name, 'one');
      await writeRandom(a, name, 'more');
      const two = await commit(a, name, 'two');
      const dirty = await writeRandom(a, name, 'uncommitted');
      await crashAt(b, fp, () => procure(b, name));
      const master = await healthy(name, '', [one, two]);
      assert.equal(master, a, 'the send failed: node 1 still masters it');
      assert.equal(await fileHash(join(await procure(b, name), 'uncommitted')), dirty, 'a second mount moves it whole');
      assert.equal(await masterKey(cluster, await lookup(a, name)), b.nodeId);
      assert.ok((await commitIds(a, name)).includes(two));
    });
  }
});
