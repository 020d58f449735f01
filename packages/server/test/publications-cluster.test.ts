import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { MemoryDriver } from '@dotmesh/storage';
import { KEYS } from '../src/cluster/store-keys.ts';
import { NODE_IDS, useInProcessCluster } from './cluster-fixture.ts';
import { type InProcessServer, rejectsCode } from './in-process.ts';

/**
 * Kubernetes uses of branches on a cluster of two nodes: AttachBranch moves the branch to the
 * node it is attached to (a handoff with its data); while it is attached or mounted there, no
 * other node takes it (Procure, MoveBranch, an attachment elsewhere: IN_USE), and a mount is
 * only made on its master. DeleteBranch through the other node is refused the same way.
 */
const masterOf = async (s: InProcessServer, name: string, branch = '') => {
  const id = await s.admin.call('Lookup', { Namespace: 'admin', Name: name, Branch: branch });
  return (await s.admin.call('AllDotsAndBranches', null)).Dots.flatMap((d) => [d.MasterBranch, ...(d.OtherBranches ?? [])]).find(
    (v) => v.Id === id,
  )?.Master;
};

describe('publications on two nodes', () => {
  const fixture = useInProcessCluster(2);
  const [a, b] = [() => fixture.node(0), () => fixture.node(1)];

  test('AttachBranch to the other node moves the branch there with its data; then it stays there while used', async () => {
    await a().admin.call('Create', { Namespace: 'admin', Name: 'kube' });
    const [initial] = await a().admin.call('Commits', { Namespace: 'admin', Name: 'kube', Branch: '' });
    await a().admin.call('Branch', {
      Namespace: 'admin',
      Name: 'kube',
      SourceBranch: 'master',
      NewBranchName: 'pvc',
      SourceCommitId: initial!.Id,
    });
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'kube', Branch: 'pvc' });
    await (a().driver as MemoryDriver).writeFile(id, '__default__/data', 'written on a');

    // A mount is only made where the branch lives.
    await rejectsCode(
      b().admin.call('PublishBranch', { FilesystemId: id, Subdot: '', Volume: 'v', Target: '/t/b', ReadOnly: false }),
      'NOT_MASTER',
    );
    assert.deepEqual((await a().admin.call('BranchPublications', id)).Uses, [], 'the refused mount left no record');

    const r = await a().admin.call('AttachBranch', { FilesystemId: id, Node: NODE_IDS[1], Volume: 'v', ReadOnly: false });
    assert.equal(r.Master, NODE_IDS[1]);
    assert.equal(await masterOf(a(), 'kube', 'pvc'), NODE_IDS[1]);
    assert.equal((await (b().driver as MemoryDriver).readFile(id, '__default__/data')).toString(), 'written on a');
    const path = await b().admin.call('PublishBranch', {
      FilesystemId: id,
      Subdot: '',
      Volume: 'v',
      Target: '/t/b',
      ReadOnly: false,
    });
    assert.equal(path, join(b().driver.volumePath(id), '__default__'));

    // Used on b: nothing takes it to a.
    await rejectsCode(a().admin.call('MoveBranch', { BranchId: id, Node: NODE_IDS[0] }), 'IN_USE', /mounted at \/t\/b/);
    await rejectsCode(
      a().admin.call('AttachBranch', { FilesystemId: id, Node: NODE_IDS[0], Volume: 'v2', ReadOnly: false }),
      'IN_USE',
    );
    await rejectsCode(a().admin.call('DeleteBranch', { Namespace: 'admin', Name: 'kube', Branch: 'pvc' }), 'IN_USE');
    assert.equal(await masterOf(a(), 'kube', 'pvc'), NODE_IDS[1]);
    const uses = await a().admin.call('BranchPublications', id);
    assert.equal(uses.Node, NODE_IDS[1]);
    assert.deepEqual(uses.Uses.map((u) => u.Kind).sort(), ['attach', 'mount']);

    // Unpublished and detached: it moves again, and goes.
    await b().admin.call('UnpublishBranch', { FilesystemId: id, Target: '/t/b' });
    await a().admin.call('DetachBranch', { FilesystemId: id, Node: NODE_IDS[1], Volume: 'v' });
    await a().admin.call('AttachBranch', { FilesystemId: id, Node: NODE_IDS[0], Volume: 'v', ReadOnly: false });
    assert.equal(await masterOf(b(), 'kube', 'pvc'), NODE_IDS[0]);
    await a().admin.call('DetachBranch', { FilesystemId: id, Node: '', Volume: 'v' });
    const gone = await b().admin.call('DeleteBranch', { Namespace: 'admin', Name: 'kube', Branch: 'pvc' });
    assert.equal(gone.Deleted, true);
    assert.deepEqual(await b().admin.call('Branches', { Namespace: 'admin', Name: 'kube' }), []);
  });

  test('the mounts of a lost node that no longer masters the branch give way once its attachment is gone (a forced detach)', async () => {
    await a().admin.call('Create', { Namespace: 'admin', Name: 'lost' });
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'lost', Branch: '' });
    await (a().driver as MemoryDriver).writeFile(id, '__default__/data', 'committed before the loss');
    // As a node that is gone left them: its lease expired (no address key: never live here),
    // the branch mastered elsewhere (on a, as after a failover), its kubelet never unmounting.
    const lost = 'd0d0d0d0d0d00004';
    const use = (kind: 'attach' | 'mount', target: string) => ({
      kind,
      volume: 'v',
      target,
      read_only: false,
      subdot: kind === 'mount' ? '__default__' : '',
      at: new Date().toISOString(),
    });
    const leave = async (uses: ReturnType<typeof use>[]) => {
      const { revision } = await fixture
        .cluster()
        .store.put(KEYS.publications(id), JSON.stringify({ filesystem_id: id, node_id: lost, uses }));
      for (const s of [a(), b()]) await s.server.ctx.view.caughtUp(revision);
    };

    // Still attached there (Kubernetes has not detached it): the branch stays where it is.
    await leave([use('attach', ''), use('mount', '/t/lost/staging'), use('mount', '/t/lost/pod')]);
    await rejectsCode(
      a().admin.call('AttachBranch', { FilesystemId: id, Node: NODE_IDS[1], Volume: 'v', ReadOnly: false }),
      'IN_USE',
      /in use on node d0d0d0d0d0d00004/,
    );
    assert.equal(await masterOf(a(), 'lost'), NODE_IDS[0]);

    // Detached (the out-of-service taint's forced detach): its mounts are void, the attachment
    // to b replaces them and moves the branch there with its data.
    await a().admin.call('DetachBranch', { FilesystemId: id, Node: lost, Volume: 'v' });
    assert.equal((await a().admin.call('BranchPublications', id)).Node, lost, 'the mounts are left as they were');
    const r = await a().admin.call('AttachBranch', { FilesystemId: id, Node: NODE_IDS[1], Volume: 'v', ReadOnly: false });
    assert.equal(r.Master, NODE_IDS[1]);
    assert.equal((await (b().driver as MemoryDriver).readFile(id, '__default__/data')).toString(), 'committed before the loss');
    const now = await a().admin.call('BranchPublications', id);
    assert.equal(now.Node, NODE_IDS[1]);
    assert.deepEqual(
      now.Uses.map((u) => u.Kind),
      ['attach'],
    );
    await a().admin.call('DetachBranch', { FilesystemId: id, Node: NODE_IDS[1], Volume: 'v' });
  });

  test('a branch mounted on its master still replicates: a sync commit is acknowledged once the other node holds it', async () => {
    await a().admin.call('Create', { Namespace: 'admin', Name: 'mounted' });
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'mounted', Branch: '' });
    await a().admin.call('SetDurability', {
      Namespace: 'admin',
      Name: 'mounted',
      Branch: '',
      WholeDot: true,
      Durability: 'sync',
    });
    await a().admin.call('PublishBranch', { FilesystemId: id, Subdot: '', Volume: 'v', Target: '/t/mounted', ReadOnly: false });
    await (a().driver as MemoryDriver).writeFile(id, '__default__/data', 'while mounted');
    // The mount is a's: b's replica is not in use, so it takes the commit (sync: the reply waits for it).
    const commit = await a().admin.call('Commit', {
      Namespace: 'admin',
      Name: 'mounted',
      Branch: '',
      Message: 'm',
      Metadata: {},
    });
    // A replica holds the commit; its live data stays as it was until it takes the branch over.
    assert.equal(typeof commit, 'string');
    assert.equal((await (b().driver as MemoryDriver).readCommitFile(id, commit, '__default__/data')).toString(), 'while mounted');
    await a().admin.call('UnpublishBranch', { FilesystemId: id, Target: '/t/mounted' });
  });

  test('Capacity lists both nodes’ pools and answers the smallest free space', async () => {
    const deadline = Date.now() + 10_000;
    let c = await a().admin.call('Capacity', null);
    // Each node advertises its pool with its branch sizes (every 2 s).
    while (Object.keys(c.Nodes).length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      c = await a().admin.call('Capacity', null);
    }
    assert.deepEqual(Object.keys(c.Nodes).sort(), [...NODE_IDS.slice(0, 2)].sort());
    assert.equal(c.FreeBytes, Math.min(...Object.values(c.Nodes).map((n) => n.FreeBytes)));
  });
});
