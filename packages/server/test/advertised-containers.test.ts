import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cleanup } from '@dotmesh/testkit';
import { type ContainerTracker, NO_CONTAINERS } from '../src/dots/containers.ts';
import { type InProcessCluster, NODE_IDS, startInProcessCluster } from './cluster-fixture.ts';
import { rejectsCode } from './in-process.ts';

/**
 * A branch's master node advertises its size and the containers using it (the original's
 * filesystems/dirty and filesystems/containers keys), so another node lists them and refuses a
 * delete of a dot in use anywhere; the master refuses to hand over a branch containers use. The
 * containers here are what a container tracker on node a reports (the Docker tracker itself is
 * tested against a real dockerd in the e2e tests).
 */
describe('what a branch’s master advertises', () => {
  const cleanup = new Cleanup();
  let c: InProcessCluster;
  let watched = '';
  const onA: ContainerTracker = {
    ...NO_CONTAINERS,
    containersFor: async (fsId) => (fsId === watched ? [{ Name: '/db', Id: 'c0ffee' }] : []),
    snapshot: async () => (fsId: string) => (fsId === watched ? [{ Name: '/db', Id: 'c0ffee' }] : []),
  };
  before(async () => {
    c = await startInProcessCluster(cleanup, 2, { containers: [onA, undefined] });
    cleanup.add(() => c.close(), 'stop the cluster');
  });
  after(() => cleanup.run());

  test('another node lists the containers using a dot and refuses to delete it', async () => {
    const [a, b] = [c.nodes[0]!, c.nodes[1]!];
    await a.admin.call('Create', { Namespace: 'admin', Name: 'busy' });
    watched = await a.admin.call('Lookup', { Namespace: 'admin', Name: 'busy', Branch: '' });
    const listed = async () => (await b.admin.call('ListWithContainers', null)).admin?.busy?.Containers ?? [];
    const deadline = Date.now() + 10_000;
    while ((await listed()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await listed(), [{ Name: '/db', Id: 'c0ffee' }], 'b lists what a advertises (every 2 s)');
    await rejectsCode(b.admin.call('Delete', { Namespace: 'admin', Name: 'busy' }), 'IN_USE', /containers are using it: \/db/);
    watched = '';
  });

  test('a handoff away from the master is refused while containers use the branch there; once they stop, it moves', async () => {
    const [a, b] = [c.nodes[0]!, c.nodes[1]!];
    await a.admin.call('Create', { Namespace: 'admin', Name: 'held' });
    const id = await a.admin.call('Lookup', { Namespace: 'admin', Name: 'held', Branch: '' });
    const masterOf = async () => (await b.admin.call('List', null)).admin?.held?.Master;
    watched = id;
    const busy = new RegExp(`cannot move admin/held to node ${NODE_IDS[1]} while containers are running on it here: /db`);
    await rejectsCode(b.admin.call('Procure', { Namespace: 'admin', Name: 'held', Subdot: '' }), 'IN_USE', busy);
    await rejectsCode(b.admin.call('MoveBranch', { BranchId: id, Node: NODE_IDS[1] }), 'IN_USE', busy);
    assert.equal(await masterOf(), NODE_IDS[0], 'nothing moved');
    assert.equal(
      (await a.admin.call('Commits', { Namespace: 'admin', Name: 'held', Branch: '' })).length,
      1,
      'no migration commit',
    );
    watched = '';
    await b.admin.call('Procure', { Namespace: 'admin', Name: 'held', Subdot: '' });
    assert.equal(await masterOf(), NODE_IDS[1]);
  });
});
