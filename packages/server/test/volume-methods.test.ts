import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { DotmeshClient } from '@dotmesh/rpc';
import { withCredentials } from '../src/auth/user-record.ts';
import { UserService } from '../src/auth/users.ts';
import { KEYS } from '../src/cluster/store-keys.ts';
import { createDotWithBranch, type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';

/**
 * The methods volume managers (the CSI driver) use beyond the original's: DeleteBranch,
 * DeleteCommit, FindCommits, DeleteSubdot, Capacity and the publications that make a branch
 * "in use" (AttachBranch, PublishBranch, ...). In-process, on the in-memory driver and store.
 */
async function withServer(fn: (s: InProcessServer) => Promise<void>) {
  const s = await startInProcess();
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

const NS = 'admin';

async function commitOn(c: DotmeshClient, name: string, branch: string, id: string, metadata: Record<string, string> = {}) {
  return c.call('Commit', {
    Namespace: NS,
    Name: name,
    Branch: branch,
    Message: id,
    Metadata: { '#commit-id': id, ...metadata },
  });
}
const ids = async (c: DotmeshClient, name: string, branch: string) =>
  (await c.call('Commits', { Namespace: NS, Name: name, Branch: branch })).map((x) => x.Id);
const branchFrom = (c: DotmeshClient, name: string, from: string, to: string, commitId: string) =>
  c.call('Branch', { Namespace: NS, Name: name, SourceBranch: from, NewBranchName: to, SourceCommitId: commitId });

describe('DeleteBranch', () => {
  test('a branch nothing builds on goes: tombstone, name free, master and its commits untouched', async () => {
    await withServer(async (s) => {
      const { dotId, branchId } = await createDotWithBranch(s.admin, 'leaf', 'b1');
      await commitOn(s.admin, 'leaf', '', 'm1');
      await commitOn(s.admin, 'leaf', 'b1', 'b1c1');
      const masterBefore = await ids(s.admin, 'leaf', '');
      const r = await s.admin.call('DeleteBranch', { Namespace: NS, Name: 'leaf', Branch: 'b1' });
      assert.deepEqual(r, { Deleted: true, Retired: false, KeptCommits: 0, Branches: 0 });
      assert.deepEqual(await s.admin.call('Branches', { Namespace: NS, Name: 'leaf' }), []);
      assert.ok(await s.store.get(KEYS.deleted(branchId)), 'a tombstone keeps replication from bringing it back');
      assert.equal(await s.store.get(KEYS.clone(dotId, 'b1')), undefined);
      assert.ok(!(await s.driver.listVolumes()).some((v) => v.id === branchId), 'its volume is gone from the pool');
      assert.deepEqual(await ids(s.admin, 'leaf', ''), masterBefore);
      // The name is free: a new branch of that name is a new volume.
      await branchFrom(s.admin, 'leaf', 'master', 'b1', 'm1');
      const again = await s.admin.call('Lookup', { Namespace: NS, Name: 'leaf', Branch: 'b1' });
      assert.notEqual(again, branchId);
      assert.deepEqual(await ids(s.admin, 'leaf', 'b1'), masterBefore);
    });
  });

  test('a branch another builds on is retired: hidden from listings, its needed commits stay, the other branch intact', async () => {
    await withServer(async (s) => {
      const { branchId } = await createDotWithBranch(s.admin, 'base', 'parent');
      await commitOn(s.admin, 'base', 'parent', 'p1');
      await commitOn(s.admin, 'base', 'parent', 'p2');
      await commitOn(s.admin, 'base', 'parent', 'p3');
      await branchFrom(s.admin, 'base', 'parent', 'child', 'p2');
      await commitOn(s.admin, 'base', 'child', 'c1');
      const childBefore = await ids(s.admin, 'base', 'child');
      const r = await s.admin.call('DeleteBranch', { Namespace: NS, Name: 'base', Branch: 'parent' });
      assert.deepEqual(r, { Deleted: false, Retired: true, KeptCommits: 2, Branches: 2 });
      assert.deepEqual(await s.admin.call('Branches', { Namespace: NS, Name: 'base' }), ['child']);
      const all = await s.admin.call('AllDotsAndBranches', null);
      const dot = all.Dots.find((d) => d.MasterBranch.Name.Name === 'base')!;
      assert.deepEqual(
        (dot.OtherBranches ?? []).map((b) => b.Branch),
        ['child'],
      );
      await rejectsCode(s.admin.call('Lookup', { Namespace: NS, Name: 'base', Branch: 'parent' }), 'BRANCH_NOT_FOUND');
      assert.deepEqual(await ids(s.admin, 'base', 'child'), childBefore, 'the child keeps its whole history');
      // p3 (nothing needs it) left the pool; p1 and p2 stay under the retired volume.
      const kept = (await s.driver.listCommits(branchId)).map((c) => c.id);
      assert.deepEqual(kept, ['p1', 'p2']);
      assert.equal(await s.store.get(KEYS.deleted(branchId)), undefined, 'not tombstoned while needed');
      // A retired name cannot be taken by hand.
      await rejectsCode(branchFrom(s.admin, 'base', 'child', `__deleted-${branchId}`, 'c1'), 'INVALID_NAME');
      // The name is free again.
      await branchFrom(s.admin, 'base', 'child', 'parent', 'c1');
      assert.deepEqual(await ids(s.admin, 'base', 'parent'), childBefore);
      // Once the child goes too, nothing needs the retired volume: it goes with it.
      await s.admin.call('DeleteBranch', { Namespace: NS, Name: 'base', Branch: 'parent' });
      const last = await s.admin.call('DeleteBranch', { Namespace: NS, Name: 'base', Branch: 'child' });
      assert.equal(last.Deleted, true);
      assert.equal(last.Branches, 0);
      assert.ok(await s.store.get(KEYS.deleted(branchId)), 'the retired volume is tombstoned once nothing needs it');
      assert.ok(!(await s.driver.listVolumes()).some((v) => v.id === branchId));
    });
  });

  test('refuses the master branch, unknown branches, and users who do not own the dot', async () => {
    await withServer(async (s) => {
      await createDotWithBranch(s.admin, 'guarded', 'b');
      await rejectsCode(
        s.admin.call('DeleteBranch', { Namespace: NS, Name: 'guarded', Branch: '' }),
        'INVALID_ARGUMENT',
        /master/,
      );
      await rejectsCode(s.admin.call('DeleteBranch', { Namespace: NS, Name: 'guarded', Branch: 'master' }), 'INVALID_ARGUMENT');
      await rejectsCode(s.admin.call('DeleteBranch', { Namespace: NS, Name: 'guarded', Branch: 'nope' }), 'BRANCH_NOT_FOUND');
      await rejectsCode(s.admin.call('DeleteBranch', { Namespace: NS, Name: 'nodot', Branch: 'b' }), 'DOT_NOT_FOUND');
      await s.admin.call('RegisterNewUser', { Name: 'eve', Email: 'eve@example.com', Password: 'eve-password-1' });
      const key = await s.client('eve', 'eve-password-1').call('GetApiKey', null);
      const eve = s.client('eve', key.ApiKey);
      await rejectsCode(eve.call('DeleteBranch', { Namespace: NS, Name: 'guarded', Branch: 'b' }), 'DOT_NOT_FOUND');
      assert.deepEqual(await s.admin.call('Branches', { Namespace: NS, Name: 'guarded' }), ['b']);
    });
  });

  test('refused while Kubernetes uses the branch (IN_USE), also for rollback and the dot’s delete; allowed once unpublished', async () => {
    await withServer(async (s) => {
      const { branchId } = await createDotWithBranch(s.admin, 'used', 'b');
      const first = await commitOn(s.admin, 'used', 'b', 'u1');
      await commitOn(s.admin, 'used', 'b', 'u2');
      const path = await s.admin.call('PublishBranch', {
        FilesystemId: branchId,
        Subdot: '',
        Volume: 'vol-1',
        Target: '/var/lib/kubelet/pods/p/volumes/x/mount',
        ReadOnly: false,
      });
      assert.match(path, /__default__$/);
      const uses = await s.admin.call('BranchPublications', branchId);
      assert.equal(uses.Node, s.server.ctx.nodeId);
      assert.deepEqual(
        uses.Uses.map((u) => [u.Kind, u.Volume, u.Target, u.ReadOnly]),
        [['mount', 'vol-1', '/var/lib/kubelet/pods/p/volumes/x/mount', false]],
      );
      await rejectsCode(s.admin.call('DeleteBranch', { Namespace: NS, Name: 'used', Branch: 'b' }), 'IN_USE', /mounted at/);
      await rejectsCode(s.admin.call('Rollback', { Namespace: NS, Name: 'used', Branch: 'b', SnapshotId: first }), 'IN_USE');
      await rejectsCode(s.admin.call('Delete', { Namespace: NS, Name: 'used' }), 'IN_USE');
      // The same mount again changes nothing; with another read-only flag it conflicts.
      await s.admin.call('PublishBranch', {
        FilesystemId: branchId,
        Subdot: '',
        Volume: 'vol-1',
        Target: '/var/lib/kubelet/pods/p/volumes/x/mount',
        ReadOnly: false,
      });
      await rejectsCode(
        s.admin.call('PublishBranch', {
          FilesystemId: branchId,
          Subdot: '',
          Volume: 'vol-1',
          Target: '/var/lib/kubelet/pods/p/volumes/x/mount',
          ReadOnly: true,
        }),
        'CONFLICT',
      );
      assert.equal((await s.admin.call('BranchPublications', branchId)).Uses.length, 1);
      await s.admin.call('UnpublishBranch', { FilesystemId: branchId, Target: '/var/lib/kubelet/pods/p/volumes/x/mount' });
      await s.admin.call('UnpublishBranch', { FilesystemId: branchId, Target: '/var/lib/kubelet/pods/p/volumes/x/mount' });
      assert.equal(await s.store.get(KEYS.publications(branchId)), undefined, 'the record goes with its last use');
      await s.admin.call('Rollback', { Namespace: NS, Name: 'used', Branch: 'b', SnapshotId: first });
      const r = await s.admin.call('DeleteBranch', { Namespace: NS, Name: 'used', Branch: 'b' });
      assert.equal(r.Deleted, true);
    });
  });

  test('an attachment counts as a use too; AttachBranch to an unknown node is NODE_NOT_FOUND', async () => {
    await withServer(async (s) => {
      const { branchId } = await createDotWithBranch(s.admin, 'att', 'b');
      const r = await s.admin.call('AttachBranch', { FilesystemId: branchId, Node: '', Volume: 'vol-a', ReadOnly: false });
      assert.equal(r.Master, s.server.ctx.nodeId);
      await rejectsCode(s.admin.call('DeleteBranch', { Namespace: NS, Name: 'att', Branch: 'b' }), 'IN_USE', /attached as vol-a/);
      await rejectsCode(
        s.admin.call('AttachBranch', { FilesystemId: branchId, Node: 'nosuchnode', Volume: 'vol-a', ReadOnly: false }),
        'NODE_NOT_FOUND',
      );
      await s.admin.call('DetachBranch', { FilesystemId: branchId, Node: '', Volume: 'vol-a' });
      await s.admin.call('DeleteBranch', { Namespace: NS, Name: 'att', Branch: 'b' });
      // Detaching a deleted branch's volume again succeeds (the sidecar retries).
      assert.equal(await s.admin.call('DetachBranch', { FilesystemId: branchId, Node: '', Volume: 'vol-a' }), true);
    });
  });

  test('NodeUses lists every use on this node, of every branch; admin only', async () => {
    await withServer(async (s) => {
      const a = await createDotWithBranch(s.admin, 'nu-a', 'b');
      const b = await createDotWithBranch(s.admin, 'nu-b', 'b');
      assert.deepEqual(await s.admin.call('NodeUses', {}), { Node: s.server.ctx.nodeId, Uses: [] });
      const target = '/var/lib/kubelet/pods/p/volumes/nu/mount';
      await s.admin.call('PublishBranch', {
        FilesystemId: a.branchId,
        Subdot: '',
        Volume: 'vol-nu',
        Target: target,
        ReadOnly: false,
      });
      await s.admin.call('AttachBranch', { FilesystemId: b.branchId, Node: '', Volume: 'vol-att', ReadOnly: false });
      const uses = await s.admin.call('NodeUses', {});
      assert.deepEqual(
        uses.Uses.map((u) => [u.FilesystemId, u.Kind, u.Volume, u.Target]).sort(),
        [
          [a.branchId, 'mount', 'vol-nu', target],
          [b.branchId, 'attach', 'vol-att', ''],
        ].sort(),
      );
      const bobId = { Id: '11111111-2222-4333-8444-555555555555', Name: 'bob', Email: 'bob@example.com', Metadata: {} };
      await new UserService(s.store).save(await withCredentials(bobId, 'bob-password', 'BOBKEY'));
      await rejectsCode(s.client('bob', 'BOBKEY').call('NodeUses', {}), 'NOT_ADMIN');
      await s.admin.call('UnpublishBranch', { FilesystemId: a.branchId, Target: target });
      await s.admin.call('DetachBranch', { FilesystemId: b.branchId, Node: '', Volume: 'vol-att' });
      assert.deepEqual((await s.admin.call('NodeUses', {})).Uses, []);
    });
  });

  test('hostile publication input is refused before anything is recorded', async () => {
    await withServer(async (s) => {
      const { branchId } = await createDotWithBranch(s.admin, 'hostile', 'b');
      const publish = (o: Partial<{ FilesystemId: string; Subdot: string; Volume: string; Target: string }>) =>
        s.admin.call('PublishBranch', {
          FilesystemId: branchId,
          Subdot: '',
          Volume: 'v',
          Target: '/mnt/t',
          ReadOnly: false,
          ...o,
        });
      await rejectsCode(publish({ Target: 'relative/path' }), 'INVALID_ARGUMENT');
      await rejectsCode(publish({ Target: '/a/../etc' }), 'INVALID_ARGUMENT');
      await rejectsCode(publish({ Target: '/a\nb' }), 'INVALID_ARGUMENT');
      await rejectsCode(publish({ Volume: '' }), 'INVALID_ARGUMENT');
      await rejectsCode(publish({ Volume: 'x'.repeat(2000) }), 'INVALID_ARGUMENT');
      await rejectsCode(publish({ Subdot: '../../etc' }), 'INVALID_NAME');
      await rejectsCode(publish({ FilesystemId: 'not-an-id' }), 'INVALID_ARGUMENT');
      await rejectsCode(publish({ FilesystemId: '11111111-1111-4111-8111-111111111111' }), 'DOT_NOT_FOUND');
      assert.equal(await s.store.get(KEYS.publications(branchId)), undefined);
    });
  });
});

describe('DeleteCommit', () => {
  test('the newest commit leaves the pool; one a later commit builds on is hidden; both gone from listings for good', async () => {
    await withServer(async (s) => {
      const { dotId, branchId } = await createDotWithBranch(s.admin, 'snaps', 'b');
      await commitOn(s.admin, 'snaps', 'b', 's1');
      await commitOn(s.admin, 'snaps', 'b', 's2');
      await commitOn(s.admin, 'snaps', 'b', 's3');
      const [initial] = await ids(s.admin, 'snaps', '');
      assert.deepEqual(await s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: 's3' }), {
        Deleted: true,
        Hidden: false,
      });
      assert.deepEqual(await ids(s.admin, 'snaps', 'b'), [initial, 's1', 's2']);
      assert.deepEqual(await s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: 's1' }), {
        Deleted: false,
        Hidden: true,
      });
      assert.deepEqual(await ids(s.admin, 'snaps', 'b'), [initial, 's2']);
      assert.deepEqual(
        (await s.driver.listCommits(branchId)).map((c) => c.id),
        ['s1', 's2'],
        's1 stays in the pool: s2 builds on it',
      );
      for (const c of ['s1', 's3']) assert.ok(await s.store.get(KEYS.deletedCommit(branchId, c)), `${c} is tombstoned`);
      assert.deepEqual(
        Object.keys(await s.admin.call('CommitSizes', { Namespace: NS, Name: 'snaps', Branch: 'b' })).sort(),
        [initial, 's2'].sort(),
        'sizes leave deleted commits out too',
      );
      // Idempotent; and a deleted commit cannot be branched from or rolled back to.
      assert.equal((await s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: 's3' })).Deleted, true);
      assert.equal((await s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: 's1' })).Hidden, true);
      await rejectsCode(branchFrom(s.admin, 'snaps', 'b', 'from-deleted', 's1'), 'COMMIT_NOT_FOUND');
      await rejectsCode(
        s.admin.call('Rollback', { Namespace: NS, Name: 'snaps', Branch: 'b', SnapshotId: 's1' }),
        'COMMIT_NOT_FOUND',
      );
      // Once s2 goes, nothing needs s1: both leave the pool.
      await s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: 's2' });
      assert.deepEqual(
        (await s.driver.listCommits(branchId)).map((c) => c.id),
        [],
      );
      assert.deepEqual(await ids(s.admin, 'snaps', 'b'), [initial]);
      // Refusals: the initial commit, a commit of another branch, an unknown commit, hostile ids.
      await rejectsCode(s.admin.call('DeleteCommit', { FilesystemId: dotId, CommitId: initial! }), 'INVALID_ARGUMENT', /initial/);
      await rejectsCode(s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: initial! }), 'COMMIT_NOT_FOUND');
      await rejectsCode(s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: 'never' }), 'COMMIT_NOT_FOUND');
      await rejectsCode(s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: '../x' }), 'INVALID_NAME');
      await rejectsCode(s.admin.call('DeleteCommit', { FilesystemId: '../etc', CommitId: 's1' }), 'INVALID_ARGUMENT');
    });
  });

  test('a retained commit keeps a deleted branch (retired) until the commit is deleted; a branch made from it keeps its data', async () => {
    await withServer(async (s) => {
      const { branchId } = await createDotWithBranch(s.admin, 'keep', 'vol');
      await commitOn(s.admin, 'keep', 'vol', 'snap', { retain: 'true', 'csi-snapshot': 'snap-name' });
      await commitOn(s.admin, 'keep', 'vol', 'later');
      const found = await s.admin.call('FindCommits', { Key: 'csi-snapshot', Value: 'snap-name' });
      assert.deepEqual(
        found.map((f) => [f.Id, f.FilesystemId, f.Name, f.Branch]),
        [['snap', branchId, 'keep', 'vol']],
      );
      const r = await s.admin.call('DeleteBranch', { Namespace: NS, Name: 'keep', Branch: 'vol' });
      assert.deepEqual([r.Retired, r.KeptCommits], [true, 1]);
      assert.deepEqual(
        (await s.driver.listCommits(branchId)).map((c) => c.id),
        ['snap'],
      );
      // Still found (the snapshot outlives its volume), under the retired branch.
      const after = await s.admin.call('FindCommits', { Key: 'csi-snapshot', Value: 'snap-name' });
      assert.deepEqual(
        after.map((f) => [f.Id, f.FilesystemId]),
        [['snap', branchId]],
      );
      const restored = await s.admin.call('FindCommits', { Key: 'csi-snapshot', Value: 'snap-name' });
      assert.equal(restored[0]!.Branch, `__deleted-${branchId}`);
      await s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: 'snap' });
      assert.deepEqual(await s.admin.call('FindCommits', { Key: 'csi-snapshot', Value: 'snap-name' }), []);
      assert.ok(!(await s.driver.listVolumes()).some((v) => v.id === branchId), 'the retired volume went with its last commit');
      assert.ok(await s.store.get(KEYS.deleted(branchId)));
    });
  });
});

describe('FindCommits, DeleteSubdot and Capacity', () => {
  test('FindCommits shows only what the caller may see; an empty key is refused', async () => {
    await withServer(async (s) => {
      await createDotWithBranch(s.admin, 'mine', 'b');
      await commitOn(s.admin, 'mine', 'b', 'tagged', { tag: 'x' });
      await s.admin.call('RegisterNewUser', { Name: 'bob', Email: 'bob@example.com', Password: 'bob-password-1' });
      const key = await s.client('bob', 'bob-password-1').call('GetApiKey', null);
      const bob = s.client('bob', key.ApiKey);
      assert.deepEqual(await bob.call('FindCommits', { Key: 'tag', Value: 'x' }), []);
      assert.equal((await s.admin.call('FindCommits', { Key: 'tag', Value: 'x' })).length, 1);
      await rejectsCode(s.admin.call('FindCommits', { Key: '', Value: 'x' }), 'INVALID_ARGUMENT');
    });
  });

  test('DeleteSubdot removes one subdot’s data and lists what is left; refused while that subdot is mounted', async () => {
    await withServer(async (s) => {
      const { branchId } = await createDotWithBranch(s.admin, 'shared', 'b');
      for (const sub of ['pvc-a', 'pvc-b']) {
        await s.admin.call('PublishBranch', {
          FilesystemId: branchId,
          Subdot: sub,
          Volume: sub,
          Target: `/t/${sub}`,
          ReadOnly: false,
        });
      }
      await s.driver.ensureDirectory(branchId, 'pvc-a/inner');
      await rejectsCode(s.admin.call('DeleteSubdot', { Namespace: NS, Name: 'shared', Branch: 'b', Subdot: 'pvc-a' }), 'IN_USE');
      await s.admin.call('UnpublishBranch', { FilesystemId: branchId, Target: '/t/pvc-a' });
      const r = await s.admin.call('DeleteSubdot', { Namespace: NS, Name: 'shared', Branch: 'b', Subdot: 'pvc-a' });
      assert.ok(r.Remaining.includes('pvc-b') && !r.Remaining.includes('pvc-a'), r.Remaining.join(','));
      assert.deepEqual(await s.driver.listDirectory(branchId, 'pvc-a'), []);
      await rejectsCode(
        s.admin.call('DeleteSubdot', { Namespace: NS, Name: 'shared', Branch: 'b', Subdot: '__root__' }),
        'INVALID_ARGUMENT',
      );
      await rejectsCode(
        s.admin.call('DeleteSubdot', { Namespace: NS, Name: 'shared', Branch: 'b', Subdot: '../x' }),
        'INVALID_NAME',
      );
    });
  });

  test('BranchById names a branch’s dot and branch for whoever may see it', async () => {
    await withServer(async (s) => {
      const { dotId, branchId } = await createDotWithBranch(s.admin, 'byid', 'b');
      assert.deepEqual(await s.admin.call('BranchById', branchId), {
        Id: branchId,
        DotId: dotId,
        Namespace: NS,
        Name: 'byid',
        Branch: 'b',
        Master: s.server.ctx.nodeId,
      });
      assert.equal((await s.admin.call('BranchById', dotId)).Branch, '');
      await s.admin.call('RegisterNewUser', { Name: 'carl', Email: 'carl@example.com', Password: 'carl-password-1' });
      const key = await s.client('carl', 'carl-password-1').call('GetApiKey', null);
      await rejectsCode(s.client('carl', key.ApiKey).call('BranchById', branchId), 'DOT_NOT_FOUND');
      await rejectsCode(s.admin.call('BranchById', 'nope/../x'), 'INVALID_ARGUMENT');
      await s.admin.call('DeleteBranch', { Namespace: NS, Name: 'byid', Branch: 'b' });
      await rejectsCode(s.admin.call('BranchById', branchId), 'DOT_NOT_FOUND');
    });
  });

  test('Capacity reports this node’s pool', async () => {
    await withServer(async (s) => {
      const pool = await s.driver.poolInfo();
      const c = await s.admin.call('Capacity', null);
      assert.equal(c.FreeBytes, pool.freeBytes);
      assert.deepEqual(Object.keys(c.Nodes), [s.server.ctx.nodeId]);
      assert.equal(c.Nodes[s.server.ctx.nodeId]!.TotalBytes, pool.totalBytes);
    });
  });
});
