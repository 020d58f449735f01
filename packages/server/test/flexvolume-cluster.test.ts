import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { MemoryDriver } from '@dotmesh/storage';
import { FlexMounts, removedByKubelet } from '../src/flexvolume/mounts.ts';
import { NODE_CALLER } from '../src/server.ts';
import { NODE_IDS, useInProcessCluster } from './cluster-fixture.ts';
import { type InProcessServer, rejectsCode } from './in-process.ts';

/**
 * The FlexVolume driver's server side on a cluster of two nodes: a mount is Procure (the dot
 * made on first use) plus a mount use on the node that masters it; while that use lasts another
 * node's mount is refused (IN_USE: no handoff); the unmount ends it, and the other node's mount
 * then hands the branch over with its data. Uses left by an unmount the server missed are ended
 * at start (pruneStale).
 */
const mountsOf = (s: InProcessServer) => new FlexMounts({ ctx: s.server.ctx, handlers: s.server.handlers, caller: NODE_CALLER });

describe('FlexVolume mounts on two nodes', () => {
  const fixture = useInProcessCluster(2);
  const [a, b] = [() => fixture.node(0), () => fixture.node(1)];

  test('a mount makes the dot and records a use; the other node’s mount waits for the unmount, then takes the branch over with its data', async () => {
    const request = (target: string) => ({ Namespace: 'admin', Name: 'flex', Subdot: '', Target: target, ReadOnly: false });
    const onA = await mountsOf(a()).mount(request('/k/a'));
    const fsId = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'flex', Branch: '' });
    assert.equal(onA.FilesystemId, fsId);
    assert.equal(onA.Path, join(a().driver.volumePath(fsId), '__default__'));
    await (a().driver as MemoryDriver).writeFile(fsId, '__default__/data', 'written through a');
    const uses = await b().admin.call('BranchPublications', fsId);
    assert.equal(uses.Node, NODE_IDS[0]);
    assert.deepEqual(
      uses.Uses.map((u) => [u.Kind, u.Volume, u.Target]),
      [['mount', 'flexvolume:admin/flex', '/k/a']],
    );

    await rejectsCode(mountsOf(b()).mount(request('/k/b')), 'IN_USE', /mounted at \/k\/a/);
    assert.deepEqual((await mountsOf(b()).unmount({ Target: '/k/a' })).Released, 0, 'b has no use of /k/a to end');

    assert.equal((await mountsOf(a()).unmount({ Target: '/k/a' })).Released, 1);
    const onB = await mountsOf(b()).mount(request('/k/b'));
    assert.equal(onB.FilesystemId, fsId);
    assert.equal((await (b().driver as MemoryDriver).readFile(fsId, '__default__/data')).toString(), 'written through a');
    assert.equal((await a().admin.call('BranchPublications', fsId)).Node, NODE_IDS[1]);

    // b's kubelet unmounted while its server was down (and removed the directory): the use goes when the server prunes.
    assert.deepEqual(await mountsOf(b()).pruneStale((target) => target !== '/k/b'), []);
    assert.deepEqual(await mountsOf(b()).pruneStale(() => true), ['/k/b']);
    assert.deepEqual((await a().admin.call('BranchPublications', fsId)).Uses, []);
  });

  test('the root subdot, a pinned branch, and refusals that record nothing', async () => {
    const mounts = mountsOf(a());
    const root = await mounts.mount({ Namespace: 'admin', Name: 'rooted', Subdot: '__root__', Target: '/k/r', ReadOnly: true });
    assert.equal(root.Path, a().driver.volumePath(root.FilesystemId));
    await rejectsCode(
      mounts.mount({ Namespace: 'admin', Name: 'absent@feature', Subdot: '', Target: '/k/p', ReadOnly: false }),
      'BRANCH_NOT_FOUND',
    );
    await rejectsCode(mounts.mount({ Namespace: 'admin', Name: '../x', Subdot: '', Target: '/k/x' }), 'INVALID_NAME');
    await rejectsCode(mounts.mount({ Namespace: 'admin', Name: 'x', Subdot: '', Target: 'k/x' }), 'INVALID_ARGUMENT');
    const names = (await a().admin.call('AllDotsAndBranches', null)).Dots.map((d) => d.MasterBranch.Name.Name);
    assert.ok(!names.includes('absent') && !names.includes('x'), names.join(','));
    assert.equal((await mounts.unmount({ Target: '/k/r' })).Released, 1);
  });
});

test('a use is stale when the kubelet removed its directory and the server can see where it was', () => {
  const seen = (paths: string[]) => (p: string) => paths.includes(p);
  const target = '/var/lib/kubelet/pods/uid-1/volumes/dotmesh.io~dm/pv-1';
  assert.equal(removedByKubelet(target, seen(['/var/lib/kubelet/pods'])), true, 'the pod directory went');
  assert.equal(removedByKubelet(target, seen(['/var/lib/kubelet/pods', target])), false, 'still there');
  assert.equal(removedByKubelet(target, seen([])), false, 'the server cannot see the kubelet’s directory');
  assert.equal(removedByKubelet('/mnt/x/target', seen(['/mnt/x'])), true);
  assert.equal(removedByKubelet('/mnt/x/target', seen([])), false);
});
