import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DotmeshClient } from '@dotmesh/rpc';
import { Cleanup } from '@dotmesh/testkit';
import { type InProcessCluster, NODE_IDS, ownVolumes, startInProcessCluster } from './cluster-fixture.ts';
import { type InProcessServer, startInProcess } from './in-process.ts';
import { transferRequest } from './transfer-request.ts';

/**
 * The original's PushWrongNode / PullWrongNode: a push or pull between clusters works through any
 * node of either cluster. The node that gets a transfer request about a dot another node
 * masters passes it on (streams included); the Transfer call itself runs on the master of the
 * local branch.
 */
async function transfer(
  from: DotmeshClient,
  direction: 'push' | 'pull',
  to: { port: number; apiKey: string },
  name: string,
): Promise<{ Status: string; Message: string }> {
  const id = await from.call('Transfer', transferRequest({ ...to, direction, name }));
  for (;;) {
    const r = await from.call('GetTransfer', id);
    if (r.Status === 'finished' || r.Status === 'error') return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

const ids = async (c: DotmeshClient, name: string) =>
  (await c.call('Commits', { Namespace: 'admin', Name: name, Branch: '' })).map((x) => x.Id);

describe('push and pull between clusters through any node', () => {
  const cleanup = new Cleanup();
  let cluster: InProcessCluster;
  let other: InProcessServer;
  /** Another cluster of the previous protocol: commit streams as plain HTTP bodies only. */
  let legacy: InProcessServer;
  before(async () => {
    cluster = await startInProcessCluster(cleanup, 2);
    cleanup.add(() => cluster.close(), 'stop the cluster');
    other = await startInProcess({ nodeId: 'e0e0e0e0e0e00005' });
    cleanup.add(() => other.close(), 'stop the other cluster');
    legacy = await startInProcess({ nodeId: 'e0e0e0e0e0e00006', transferStreamUpgrade: false });
    cleanup.add(() => legacy.close(), 'stop the cluster of the previous protocol');
  });
  after(() => cleanup.run());
  const [a, b] = [() => cluster.nodes[0]!, () => cluster.nodes[1]!];

  test('PushWrongNode: a push into a dot mastered by a, sent to b, lands on a', async () => {
    await other.admin.call('Create', { Namespace: 'admin', Name: 'kiwi' });
    const first = await transfer(other.admin, 'push', { port: a().server.port, apiKey: a().apiKey }, 'kiwi');
    assert.equal(first.Status, 'finished', first.Message);
    await other.admin.call('Commit', { Namespace: 'admin', Name: 'kiwi', Branch: '', Message: 'second', Metadata: {} });
    const second = await transfer(other.admin, 'push', { port: b().server.port, apiKey: a().apiKey }, 'kiwi');
    assert.equal(second.Status, 'finished', second.Message);
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'kiwi', Branch: '' });
    assert.deepEqual(await ids(a().admin, 'kiwi'), await ids(other.admin, 'kiwi'));
    assert.deepEqual((await a().driver.listCommits(id)).length, 2, 'both commits are in the master’s pool');
    assert.deepEqual(
      await ownVolumes(b().driver),
      [],
      'b passed it on and holds nothing of its own (replication gives it replicas)',
    );
    assert.equal((await b().admin.call('List', null)).admin?.kiwi?.Master, NODE_IDS[0]);
  });

  test('PullWrongNode: a pull from b of a dot a masters gets a’s commits', async () => {
    await a().admin.call('Create', { Namespace: 'admin', Name: 'lime' });
    await a().admin.call('Commit', { Namespace: 'admin', Name: 'lime', Branch: '', Message: 'on a', Metadata: {} });
    const r = await transfer(other.admin, 'pull', { port: b().server.port, apiKey: a().apiKey }, 'lime');
    assert.equal(r.Status, 'finished', r.Message);
    assert.deepEqual(await ids(other.admin, 'lime'), await ids(a().admin, 'lime'));
  });

  test('a transfer started on the non-master node runs on the master of its local branch', async () => {
    await other.admin.call('Commit', { Namespace: 'admin', Name: 'lime', Branch: '', Message: 'on other', Metadata: {} });
    // b is asked to pull into lime, which a masterNodes: a runs it.
    const r = await transfer(b().admin, 'pull', { port: other.server.port, apiKey: other.apiKey }, 'lime');
    assert.equal(r.Status, 'finished', r.Message);
    assert.deepEqual(await ids(a().admin, 'lime'), await ids(other.admin, 'lime'));
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'lime', Branch: '' });
    assert.equal((await a().driver.listCommits(id)).length, 3);
  });

  test('a cluster of the previous protocol pushes and pulls through the wrong node too (plain bodies passed on)', async () => {
    await legacy.admin.call('Create', { Namespace: 'admin', Name: 'plum' });
    await legacy.admin.call('Commit', { Namespace: 'admin', Name: 'plum', Branch: '', Message: 'one', Metadata: {} });
    const pushed = await transfer(legacy.admin, 'push', { port: a().server.port, apiKey: a().apiKey }, 'plum');
    assert.equal(pushed.Status, 'finished', pushed.Message);
    await legacy.admin.call('Commit', { Namespace: 'admin', Name: 'plum', Branch: '', Message: 'two', Metadata: {} });
    const again = await transfer(legacy.admin, 'push', { port: b().server.port, apiKey: a().apiKey }, 'plum');
    assert.equal(again.Status, 'finished', again.Message);
    assert.deepEqual(await ids(a().admin, 'plum'), await ids(legacy.admin, 'plum'));
    await a().admin.call('Commit', { Namespace: 'admin', Name: 'plum', Branch: '', Message: 'three, on a', Metadata: {} });
    const pulled = await transfer(legacy.admin, 'pull', { port: b().server.port, apiKey: a().apiKey }, 'plum');
    assert.equal(pulled.Status, 'finished', pulled.Message);
    assert.deepEqual(await ids(legacy.admin, 'plum'), await ids(a().admin, 'plum'));
    assert.deepEqual(
      await ownVolumes(b().driver),
      [],
      'b passed everything on and holds nothing of its own (replication gives it replicas)',
    );
  });
});
