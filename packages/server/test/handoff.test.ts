import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { MemoryDriver } from '@dotmesh/storage';
import { KEYS } from '../src/cluster/store-keys.ts';
import { NODE_IDS, startInProcessCluster, useInProcessCluster } from './cluster-fixture.ts';
import { type InProcessServer, rejectsCode } from './in-process.ts';

/**
 * Handoff: mounting a branch on another node (Procure) moves it there with its history; the old
 * master commits what was uncommitted first (`type: migration`); exactly one master at a time;
 * the branch moves back the same way. MoveBranch starts a move from any node; and
 * ForceBranchMasterById forces one.
 */
const ids = async (s: InProcessServer, name: string) =>
  (await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' })).map((c) => c.Id);
const masterOf = async (s: InProcessServer, name: string) => (await s.admin.call('List', null)).admin?.[name]?.Master;

describe('handoff between two nodes', () => {
  const fixture = useInProcessCluster(2);
  const { cleanup } = fixture;
  const [a, b] = [() => fixture.node(0), () => fixture.node(1)];
  const driverOf = (s: InProcessServer) => s.driver as MemoryDriver;

  test('Procure on the other node moves the branch there, uncommitted data committed first', async () => {
    await a().admin.call('Procure', { Namespace: 'admin', Name: 'plums', Subdot: '' });
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'plums', Branch: '' });
    await driverOf(a()).writeFile(id, '__default__/data', 'committed on a');
    await a().admin.call('Commit', { Namespace: 'admin', Name: 'plums', Branch: '', Message: 'one', Metadata: {} });
    await driverOf(a()).writeFile(id, '__default__/data', 'uncommitted on a');
    const before = await ids(a(), 'plums');

    await b().admin.call('Procure', { Namespace: 'admin', Name: 'plums', Subdot: '' });
    assert.equal(await masterOf(a(), 'plums'), NODE_IDS[1]);
    const after = await ids(b(), 'plums');
    assert.deepEqual(after.slice(0, before.length), before, 'every commit moved, in order');
    assert.equal(after.length, before.length + 1, 'plus the migration commit');
    const migration = (await b().admin.call('Commits', { Namespace: 'admin', Name: 'plums', Branch: '' })).at(-1)!;
    assert.equal(migration.Metadata.type, 'migration');
    assert.equal(migration.Metadata.author, 'system');
    assert.equal(
      (await driverOf(b()).readFile(id, '__default__/data')).toString(),
      'uncommitted on a',
      'b’s live data is the head',
    );
    assert.deepEqual(await ids(a(), 'plums'), after, 'asked through a, answered by the new master');
    const states = JSON.parse((await fixture.cluster().store.get(KEYS.state(NODE_IDS[0], id)))!.value);
    assert.equal(states.state.state, 'inactive', 'a keeps an inactive copy');
  });

  test('the new master takes commits, also those sent to the old one (passed on); the old one gets them as a replica', async () => {
    const id = await b().admin.call('Lookup', { Namespace: 'admin', Name: 'plums', Branch: '' });
    await driverOf(b()).writeFile(id, '__default__/data', 'two');
    const two = await a().admin.call('Commit', { Namespace: 'admin', Name: 'plums', Branch: '', Message: 'two', Metadata: {} });
    assert.ok((await driverOf(b()).listCommits(id)).some((x) => x.id === two));
    // Replication brings it to a, in the background.
    await waitFor(async () => (await driverOf(a()).listCommits(id)).some((x) => x.id === two), 10_000);
    const label = (await driverOf(a()).listVolumes()).find((v) => v.id === id)?.label;
    assert.equal(label?.replica, true, 'a’s copy stays a replica');
    // A replica's live data stays as it was until its takeover (the next test): the commit holds the data.
    assert.equal((await driverOf(a()).readCommitFile(id, two, '__default__/data')).toString(), 'two');
  });

  test('and back: Procure on the first node returns the branch with the commits made meanwhile', async () => {
    await a().admin.call('Procure', { Namespace: 'admin', Name: 'plums', Subdot: '' });
    assert.equal(await masterOf(b(), 'plums'), NODE_IDS[0]);
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'plums', Branch: '' });
    assert.deepEqual(await ids(a(), 'plums'), await ids(b(), 'plums'));
    assert.equal((await driverOf(a()).readFile(id, '__default__/data')).toString(), 'two');
  });

  test('back to a node whose copy holds commits the master rolled back: they are stashed there, the move goes on', async () => {
    await a().admin.call('Procure', { Namespace: 'admin', Name: 'pears', Subdot: '' });
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'pears', Branch: '' });
    const commit = async (s: InProcessServer, data: string) => {
      await driverOf(s).writeFile(id, '__default__/data', data);
      return s.admin.call('Commit', { Namespace: 'admin', Name: 'pears', Branch: '', Message: data, Metadata: {} });
    };
    const one = await commit(a(), 'one');
    const two = await commit(a(), 'two');
    await b().admin.call('Procure', { Namespace: 'admin', Name: 'pears', Subdot: '' });
    await b().admin.call('Rollback', { Namespace: 'admin', Name: 'pears', Branch: '', SnapshotId: one });
    const three = await commit(b(), 'three');
    // a's replica still holds `two`, which the master dropped: a diverged copy.
    await a().admin.call('Procure', { Namespace: 'admin', Name: 'pears', Subdot: '' });
    assert.equal(await masterOf(b(), 'pears'), NODE_IDS[0]);
    const history = await ids(a(), 'pears');
    assert.deepEqual(history.slice(-2), [one, three], 'the master’s history, as the master left it');
    assert.ok(!history.includes(two));
    assert.equal((await driverOf(a()).readFile(id, '__default__/data')).toString(), 'three');
    const branches = await a().admin.call('Branches', { Namespace: 'admin', Name: 'pears' });
    const stash = branches.find((name) => name.startsWith('master-DIVERGED-'));
    assert.ok(stash, `a DIVERGED branch keeps what only a held: ${branches.join(', ')}`);
    const kept = await a().admin.call('Commits', { Namespace: 'admin', Name: 'pears', Branch: stash });
    assert.ok(
      kept.some((c) => c.Id === two),
      'the dropped commit is in it',
    );
    assert.deepEqual(await ids(b(), 'pears'), history, 'both nodes list one history');
  });

  test('MoveBranch from any node to a named node; a node that is not live is refused', async () => {
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'plums', Branch: '' });
    const moved = await b().admin.call('MoveBranch', { BranchId: id, Node: NODE_IDS[1] });
    assert.equal(moved.Master, NODE_IDS[1]);
    assert.equal(await masterOf(a(), 'plums'), NODE_IDS[1]);
    await rejectsCode(
      b().admin.call('MoveBranch', { BranchId: id, Node: 'ffffffffffff0009' }),
      'INVALID_ARGUMENT',
      /not a live node/,
    );
  });

  test('ForceBranchMasterById (smash-branch-master) makes the serving node master; it takes the branch over', async () => {
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'plums', Branch: '' });
    assert.equal(await a().admin.call('ForceBranchMasterById', { FilesystemId: id, Master: '' }), true);
    assert.equal(await masterOf(b(), 'plums'), NODE_IDS[0]);
    const three = await a().admin.call('Commit', {
      Namespace: 'admin',
      Name: 'plums',
      Branch: '',
      Message: 'forced',
      Metadata: {},
    });
    assert.ok((await driverOf(a()).listCommits(id)).some((x) => x.id === three));
    // b learnt it no longer masters the branch: its copy is a replica in its pool.
    await waitFor(async () => (await driverOf(b()).readLabel(id)).replica === true);
    assert.notEqual((await driverOf(a()).readLabel(id)).replica, true);
  });

  test('the store lost entirely: the master’s copy claims the branch back, never the older replica', async () => {
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'plums', Branch: '' });
    const expected = await ids(a(), 'plums');
    // The replica (b) starts first on an empty store, then the master (a).
    const drivers = [b().driver, a().driver];
    await fixture.cluster().close();
    const fresh = await startInProcessCluster(cleanup, 2, { drivers, nodeIds: [NODE_IDS[1], NODE_IDS[0]] });
    cleanup.add(() => fresh.close(), 'stop the restarted cluster');
    const [b2, a2] = fresh.nodes as [InProcessServer, InProcessServer];
    assert.equal(await b2.admin.call('Lookup', { Namespace: 'admin', Name: 'plums', Branch: '' }), id);
    assert.equal(await masterOf(b2, 'plums'), NODE_IDS[0], 'a, the master, claimed it');
    assert.deepEqual(await ids(b2, 'plums'), expected, 'every commit is back, through either node');
    assert.deepEqual(await ids(a2, 'plums'), expected);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
