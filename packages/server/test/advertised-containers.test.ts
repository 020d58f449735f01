import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cleanup } from '@dotmesh/testkit';
import { type ContainerTracker, NO_CONTAINERS } from '../src/dots/containers.ts';
import { type InProcessCluster, startInProcessCluster } from './cluster-fixture.ts';
import { rejectsCode } from './in-process.ts';

/**
 * A branch's master node advertises its size and the containers using it (the original's
 * filesystems/dirty and filesystems/containers keys), so another node lists them and refuses a
 * delete of a dot in use anywhere. The containers here are what a container tracker on node a
 * reports (the Docker tracker itself is tested against a real dockerd in the e2e tests).
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
});
