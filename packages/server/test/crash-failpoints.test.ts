import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DotmeshClient } from '@dotmesh/rpc';
import {
  Cleanup,
  type ServerProcess,
  STORE_KINDS,
  type StoreKind,
  skipUnless,
  startServerProcess,
  storeOptionsFor,
} from '@dotmesh/testkit';
import { FAILPOINTS } from '../src/failpoints.ts';

/**
 * R1: crash the real server (SIGKILL from inside, at the failpoint) between every two steps
 * of every multi-step mutation, restart it, and check the invariants: every commit complete
 * with its metadata or absent, no dot stuck, no committed data lost, and the outcome is
 * either "as if it never happened" or "as if it completed".
 */
const skipFor = (store: StoreKind) => skipUnless(['root', 'btrfs', 'losetup', ...(store === 'etcd' ? (['etcd'] as const) : [])]);

async function invariants(c: DotmeshClient): Promise<void> {
  const all = await c.call('AllDotsAndBranches', null);
  for (const dot of all.Dots) {
    for (const vol of [dot.MasterBranch, ...(dot.OtherBranches ?? [])]) {
      const commits = await c.call('CommitsById', vol.Id);
      assert.equal(commits.length, vol.CommitCount);
      assert.ok(commits.length >= 1, `${vol.Name.Name}@${vol.Branch} has its initial commit`);
      for (const commit of commits) {
        for (const key of ['message', 'author', 'timestamp']) assert.ok(key in commit.Metadata, `commit ${commit.Id} has ${key}`);
      }
      // Not stuck: the branch still takes commits.
      await c.call('Commit', {
        Namespace: vol.Name.Namespace,
        Name: vol.Name.Name,
        Branch: vol.Branch,
        Message: 'probe',
        Metadata: {},
      });
    }
  }
}

async function crashAt(s: ServerProcess, failpoint: string, op: (c: DotmeshClient) => Promise<unknown>): Promise<ServerProcess> {
  assert.equal(await s.admin.call('SetDebugFlag', { FlagName: failpoint, FlagValue: 'crash' }), 'off');
  await assert.rejects(op(s.admin), /cannot reach|socket|ECONNRESET|fetch failed|terminated|other side closed/i);
  await s.exited();
  return s.restart();
}

for (const store of STORE_KINDS) {
  describe(`crash at every failpoint (R1) (${store} store)`, { skip: skipFor(store) }, () => {
    const cleanup = new Cleanup();
    let s: ServerProcess;
    before(async () => {
      s = await startServerProcess({ cleanup, ...(await storeOptionsFor(store, cleanup)) });
    });
    after(async () => cleanup.run());

    const dotExists = async (name: string) =>
      (await s.admin.call('Exists', { Namespace: 'admin', Name: name, Branch: '' })) !== '';

    for (const fp of FAILPOINTS.create) {
      test(`create crashes at ${fp}`, async () => {
        const name = `c-${fp.replace(/\W/g, '-')}`;
        s = await crashAt(s, fp, (c) => c.call('Create', { Namespace: 'admin', Name: name }));
        const exists = await dotExists(name);
        // Before the initial commit the dot never existed; after it, it is complete.
        assert.equal(exists, fp !== 'create.after-volume', `dot ${name} exists after crash at ${fp}`);
        await invariants(s.admin);
        if (!exists) await s.admin.call('Create', { Namespace: 'admin', Name: name });
      });
    }

    for (const fp of FAILPOINTS.commit) {
      test(`commit crashes at ${fp}`, async () => {
        const name = `m-${fp.replace(/\W/g, '-')}`;
        const path = await s.admin.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' });
        await writeFile(join(path, 'data'), 'committed');
        const before = await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' });
        s = await crashAt(s, fp, (c) =>
          c.call('Commit', {
            Namespace: 'admin',
            Name: name,
            Branch: '',
            Message: 'crashy',
            Metadata: { '#commit-id': 'crash-commit' },
          }),
        );
        const commits = await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' });
        // The snapshot is durable before the first failpoint: recovery adopts the commit.
        assert.deepEqual(
          commits.map((c) => c.Id),
          [...before.map((c) => c.Id), 'crash-commit'],
        );
        assert.equal(commits.at(-1)?.Metadata.message, 'crashy');
        await invariants(s.admin);
      });
    }

    for (const fp of FAILPOINTS.branch) {
      test(`branch crashes at ${fp}`, async () => {
        const name = `b-${fp.replace(/\W/g, '-')}`;
        await s.admin.call('Create', { Namespace: 'admin', Name: name });
        const [initial] = await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' });
        s = await crashAt(s, fp, (c) =>
          c.call('Branch', {
            Namespace: 'admin',
            Name: name,
            SourceBranch: 'master',
            NewBranchName: 'nb',
            SourceCommitId: initial!.Id,
          }),
        );
        assert.deepEqual(await s.admin.call('Branches', { Namespace: 'admin', Name: name }), ['nb']);
        await invariants(s.admin);
      });
    }

    for (const fp of FAILPOINTS.rollback) {
      test(`rollback crashes at ${fp}`, async () => {
        const name = `r-${fp.replace(/\W/g, '-')}`;
        const path = await s.admin.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' });
        await writeFile(join(path, 'data'), 'one');
        const one = await s.admin.call('Commit', { Namespace: 'admin', Name: name, Branch: '', Message: 'one', Metadata: {} });
        await writeFile(join(path, 'data'), 'two');
        await s.admin.call('Commit', { Namespace: 'admin', Name: name, Branch: '', Message: 'two', Metadata: {} });
        s = await crashAt(s, fp, (c) => c.call('Rollback', { Namespace: 'admin', Name: name, Branch: '', SnapshotId: one }));
        // The intent is recorded before any data changes: recovery completes the rollback.
        const commits = await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' });
        assert.equal(commits.at(-1)?.Id, one);
        assert.equal(await readFile(join(path, 'data'), 'utf8'), 'one');
        await invariants(s.admin);
      });
    }

    for (const fp of FAILPOINTS.delete) {
      test(`delete crashes at ${fp}`, async () => {
        const name = `d-${fp.replace(/\W/g, '-')}`;
        await s.admin.call('Create', { Namespace: 'admin', Name: name });
        const [initial] = await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' });
        await s.admin.call('Branch', {
          Namespace: 'admin',
          Name: name,
          SourceBranch: 'master',
          NewBranchName: 'x',
          SourceCommitId: initial!.Id,
        });
        s = await crashAt(s, fp, (c) => c.call('Delete', { Namespace: 'admin', Name: name }));
        assert.equal(await dotExists(name), false);
        await invariants(s.admin);
        await s.admin.call('Create', { Namespace: 'admin', Name: name });
      });
    }

    const commitOn = (name: string, branch: string, id: string, metadata: Record<string, string> = {}) =>
      s.admin.call('Commit', {
        Namespace: 'admin',
        Name: name,
        Branch: branch,
        Message: id,
        Metadata: { '#commit-id': id, ...metadata },
      });
    const idsOf = async (name: string, branch: string) =>
      (await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: branch })).map((c) => c.Id);
    const branchFrom = (name: string, from: string, to: string, commitId: string) =>
      s.admin.call('Branch', { Namespace: 'admin', Name: name, SourceBranch: from, NewBranchName: to, SourceCommitId: commitId });

    for (const fp of FAILPOINTS.deleteBranch) {
      test(`delete-branch crashes at ${fp} (a branch another builds on: retired)`, async () => {
        const name = `db-${fp.replace(/\W/g, '-')}`;
        const path = await s.admin.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' });
        await writeFile(join(path, 'data'), 'base');
        await commitOn(name, '', 'm1');
        await branchFrom(name, 'master', 'parent', 'm1');
        await commitOn(name, 'parent', 'p1');
        await commitOn(name, 'parent', 'p2');
        await branchFrom(name, 'parent', 'child', 'p1');
        await commitOn(name, 'child', 'c1');
        const child = await idsOf(name, 'child');
        s = await crashAt(s, fp, (c) => c.call('DeleteBranch', { Namespace: 'admin', Name: name, Branch: 'parent' }));
        // The label is renamed before the store: recovery completes the delete.
        assert.deepEqual(await s.admin.call('Branches', { Namespace: 'admin', Name: name }), ['child']);
        assert.deepEqual(await idsOf(name, 'child'), child, 'the other branch keeps its whole history');
        await invariants(s.admin);
        await branchFrom(name, 'child', 'parent', 'c1');
        assert.deepEqual(await idsOf(name, 'parent'), child, 'the name is free: a new branch takes it');
      });
    }

    test('delete-branch crashes at delete-branch.after-store (a branch nothing builds on: deleted)', async () => {
      const name = 'db-leaf';
      await s.admin.call('Create', { Namespace: 'admin', Name: name });
      const [initial] = await idsOf(name, '');
      await branchFrom(name, 'master', 'leaf', initial!);
      await commitOn(name, 'leaf', 'l1');
      s = await crashAt(s, 'delete-branch.after-store', (c) =>
        c.call('DeleteBranch', { Namespace: 'admin', Name: name, Branch: 'leaf' }),
      );
      assert.deepEqual(await s.admin.call('Branches', { Namespace: 'admin', Name: name }), []);
      await invariants(s.admin);
      await branchFrom(name, 'master', 'leaf', initial!);
      assert.deepEqual(await idsOf(name, 'leaf'), [initial]);
    });

    for (const fp of FAILPOINTS.deleteCommit) {
      test(`delete-commit crashes at ${fp}`, async () => {
        const name = `dc-${fp.replace(/\W/g, '-')}`;
        await s.admin.call('Create', { Namespace: 'admin', Name: name });
        const [initial] = await idsOf(name, '');
        await branchFrom(name, 'master', 'b', initial!);
        const branchId = await s.admin.call('Lookup', { Namespace: 'admin', Name: name, Branch: 'b' });
        await commitOn(name, 'b', 's1', { snap: `${name}-s1` });
        await commitOn(name, 'b', 's2', { snap: `${name}-s2` });
        s = await crashAt(s, fp, (c) => c.call('DeleteCommit', { FilesystemId: branchId, CommitId: 's1' }));
        // The label marks it deleted before the store: recovery completes the delete.
        assert.deepEqual(await idsOf(name, 'b'), [initial, 's2']);
        assert.deepEqual(await s.admin.call('FindCommits', { Key: 'snap', Value: `${name}-s1` }), []);
        assert.equal((await s.admin.call('FindCommits', { Key: 'snap', Value: `${name}-s2` })).length, 1);
        assert.deepEqual(await s.admin.call('DeleteCommit', { FilesystemId: branchId, CommitId: 's1' }), {
          Deleted: false,
          Hidden: true,
        });
        await invariants(s.admin);
      });
    }

    test('error mode (the original PartialFail flags): Create fails with "Injected fault", a retry works', async () => {
      assert.equal(await s.admin.call('SetDebugFlag', { FlagName: 'PartialFailCreateFilesystem', FlagValue: 'true' }), 'false');
      await assert.rejects(s.admin.call('Create', { Namespace: 'admin', Name: 'partial' }), /Injected fault/);
      assert.equal(await dotExists('partial'), false);
      await s.admin.call('Create', { Namespace: 'admin', Name: 'partial' });
      assert.equal(await dotExists('partial'), true);
    });
  });
}

/**
 * R1 for the receiving side of transfers: the receiver crashes at every failpoint of receiving
 * a commit and of stashing diverged commits, mid-push from another server. After a restart the
 * invariants hold, the commit is there whole (with the live data following it) or absent, no
 * commit is lost, and running the push again completes.
 */
describe('crash at every receive and stash failpoint (R1)', { skip: skipFor('embedded') }, () => {
  const cleanup = new Cleanup();
  let receiver: ServerProcess;
  let sender: ServerProcess;
  const timing = { transferIdleTimeoutMs: 5000, transferAttempts: 2, transferBackoffMs: 100 };
  before(async () => {
    [receiver, sender] = await Promise.all([
      startServerProcess({ cleanup, extraConfig: timing }),
      startServerProcess({ cleanup, extraConfig: timing }),
    ]);
  });
  after(async () => cleanup.run());

  const push = async (name: string, stash = false) => {
    const id = await sender.admin.call('Transfer', {
      Peer: '127.0.0.1',
      User: 'admin',
      Port: receiver.port,
      ApiKey: receiver.apiKey,
      Direction: 'push',
      LocalNamespace: 'admin',
      LocalName: name,
      LocalBranchName: '',
      RemoteNamespace: 'admin',
      RemoteName: name,
      RemoteBranchName: '',
      TargetCommit: '',
      StashDivergence: stash,
      PeerCertSha256: '',
      PeerHttps: false,
    });
    for (;;) {
      const r = await sender.admin.call('GetTransfer', id);
      if (r.Status === 'finished' || r.Status === 'error') return r;
      await new Promise((res) => setTimeout(res, 100));
    }
  };
  const ids = async (s: ServerProcess, name: string, branch = '') =>
    (await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: branch })).map((c) => c.Id);
  const write = async (s: ServerProcess, name: string, text: string) => {
    const path = await s.admin.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' });
    await writeFile(join(path, 'data'), text);
    return path;
  };
  const commit = (s: ServerProcess, name: string, message: string) =>
    s.admin.call('Commit', { Namespace: 'admin', Name: name, Branch: '', Message: message, Metadata: {} });

  for (const fp of FAILPOINTS.receive) {
    test(`receive crashes at ${fp}`, async () => {
      const name = `recv-${fp.replace(/\W/g, '-')}`;
      await write(sender, name, 'one');
      await commit(sender, name, 'one');
      assert.equal((await push(name)).Status, 'finished');
      await write(sender, name, 'two');
      const two = await commit(sender, name, 'two');
      assert.equal(await receiver.admin.call('SetDebugFlag', { FlagName: fp, FlagValue: 'crash' }), 'off');
      const cut = await push(name);
      assert.equal(cut.Status, 'error', 'the receiver died mid-push');
      await receiver.exited();
      receiver = await receiver.restart();
      const after = await ids(receiver, name);
      const path = await receiver.admin.call('Procure', { Namespace: 'admin', Name: name, Subdot: '' });
      const sent = await ids(sender, name);
      // whole or absent, and the live data follows the head either way
      if (after.includes(two)) {
        assert.deepEqual(after, sent);
        assert.equal(await readFile(join(path, 'data'), 'utf8'), 'two');
      } else {
        assert.deepEqual(after, sent.slice(0, -1));
        assert.equal(await readFile(join(path, 'data'), 'utf8'), 'one');
      }
      const rerun = await push(name);
      assert.equal(rerun.Status, 'finished', rerun.Message);
      assert.deepEqual(await ids(receiver, name), sent);
      assert.equal(await readFile(join(path, 'data'), 'utf8'), 'two');
      await invariants(receiver.admin);
    });
  }

  for (const fp of FAILPOINTS.stash) {
    test(`stash crashes at ${fp}`, async () => {
      const name = `stash-${fp.replace(/\W/g, '-')}`;
      await write(sender, name, 'base');
      await commit(sender, name, 'base');
      assert.equal((await push(name)).Status, 'finished');
      await write(receiver, name, 'receiver side');
      const theirs = await commit(receiver, name, 'theirs');
      await write(sender, name, 'sender side');
      await commit(sender, name, 'ours');
      assert.equal(await receiver.admin.call('SetDebugFlag', { FlagName: fp, FlagValue: 'crash' }), 'off');
      assert.equal((await push(name, true)).Status, 'error', 'the receiver died mid-stash');
      await receiver.exited();
      receiver = await receiver.restart();
      // the receiver's own commit is in some branch's history: nothing lost
      const reachable = async () => {
        const out = new Set<string>();
        for (const b of ['', ...(await receiver.admin.call('Branches', { Namespace: 'admin', Name: name }))]) {
          for (const c of await ids(receiver, name, b)) out.add(c);
        }
        return out;
      };
      assert.ok((await reachable()).has(theirs), 'the diverged commit survived the crash');
      const rerun = await push(name, true);
      assert.equal(rerun.Status, 'finished', rerun.Message);
      assert.deepEqual(await ids(receiver, name), await ids(sender, name));
      const branches = await receiver.admin.call('Branches', { Namespace: 'admin', Name: name });
      const stashed = branches.filter((b) => b.startsWith('master-DIVERGED-'));
      assert.ok(stashed.length >= 1, `a DIVERGED branch: ${branches}`);
      assert.ok((await reachable()).has(theirs));
      await invariants(receiver.admin);
    });
  }
});
