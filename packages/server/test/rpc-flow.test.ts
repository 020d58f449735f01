import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';

describe('dot lifecycle over JSON-RPC (in-memory driver)', () => {
  let s: InProcessServer;
  before(async () => {
    s = await startInProcess();
  });
  after(async () => s.close());

  test('create gives an initial commit and a __default__ subdot; list shows it', async () => {
    assert.equal(await s.admin.call('Create', { Namespace: 'admin', Name: 'foo' }), true);
    const commits = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: '' });
    assert.equal(commits.length, 1);
    assert.equal(commits[0]?.Metadata.message, 'Initial commit');
    assert.equal(commits[0]?.Metadata.type, 'dotmesh.initial');
    assert.equal(commits[0]?.Metadata.author, 'admin');
    const list = await s.admin.call('List', null);
    assert.equal(list.admin?.foo?.CommitCount, 1);
    assert.equal(list.admin?.foo?.Branch, '');
    await rejectsCode(s.admin.call('Create', { Namespace: 'admin', Name: 'foo' }), 'DOT_EXISTS');
  });

  test('commit appends with metadata; commits are oldest first; ids are new in the dot', async () => {
    const id1 = await s.admin.call('Commit', {
      Namespace: 'admin',
      Name: 'foo',
      Branch: '',
      Message: 'one',
      Metadata: { apples: 'green', empty: '' },
    });
    const id2 = await s.admin.call('Commit', {
      Namespace: 'admin',
      Name: 'foo',
      Branch: '',
      Message: 'two',
      Metadata: { '#commit-id': 'my-id' },
    });
    assert.equal(id2, 'my-id');
    const commits = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: '' });
    assert.deepEqual(
      commits.map((c) => c.Id),
      [commits[0]!.Id, id1, 'my-id'],
    );
    assert.equal(commits[1]?.Metadata.apples, 'green');
    assert.equal(commits[1]?.Metadata.empty, '');
    assert.match(commits[1]?.Metadata.timestamp ?? '', /^\d{19}$/);
    await rejectsCode(
      s.admin.call('Commit', {
        Namespace: 'admin',
        Name: 'foo',
        Branch: '',
        Message: 'dup',
        Metadata: { '#commit-id': 'my-id' },
      }),
      'COMMIT_EXISTS',
    );
    await rejectsCode(
      s.admin.call('Commit', { Namespace: 'admin', Name: 'foo', Branch: '', Message: 'x', Metadata: { Upper: 'x' } }),
      'INVALID_METADATA',
      /Metadata field names must start with lowercase characters: Upper/,
    );
  });

  test('branch from a commit, commit on it, history includes the origin', async () => {
    const master = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: '' });
    const head = master.at(-1)!.Id;
    assert.equal(
      await s.admin.call('Branch', {
        Namespace: 'admin',
        Name: 'foo',
        SourceBranch: 'master',
        NewBranchName: 'b1',
        SourceCommitId: head,
      }),
      true,
    );
    await rejectsCode(
      s.admin.call('Branch', {
        Namespace: 'admin',
        Name: 'foo',
        SourceBranch: 'master',
        NewBranchName: 'b1',
        SourceCommitId: head,
      }),
      'BRANCH_EXISTS',
      /Branch already exists: b1/,
    );
    const onB1 = await s.admin.call('Commit', { Namespace: 'admin', Name: 'foo', Branch: 'b1', Message: 'on b1', Metadata: {} });
    const b1 = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: 'b1' });
    assert.deepEqual(
      b1.map((c) => c.Id),
      [...master.map((c) => c.Id), onB1],
    );
    assert.deepEqual(await s.admin.call('Branches', { Namespace: 'admin', Name: 'foo' }), ['b1']);
    const fsId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'foo', Branch: 'b1' });
    const vol = await s.admin.call('Get', fsId);
    assert.equal(vol.Branch, 'b1');
    assert.equal(vol.CommitCount, b1.length);
  });

  test('rollback drops later commits; a rollback past the branch start re-bases it', async () => {
    const before = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: '' });
    assert.equal(
      await s.admin.call('Rollback', { Namespace: 'admin', Name: 'foo', Branch: '', SnapshotId: before[1]!.Id }),
      true,
    );
    const after = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: '' });
    assert.deepEqual(
      after.map((c) => c.Id),
      before.slice(0, 2).map((c) => c.Id),
    );
    // b1 still reaches master's dropped commit my-id through its origin.
    const b1 = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: 'b1' });
    assert.ok(b1.some((c) => c.Id === 'my-id'));
    await s.admin.call('Rollback', { Namespace: 'admin', Name: 'foo', Branch: 'b1', SnapshotId: before[0]!.Id });
    const b1After = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: 'b1' });
    assert.deepEqual(
      b1After.map((c) => c.Id),
      [before[0]!.Id],
    );
    await rejectsCode(
      s.admin.call('Rollback', { Namespace: 'admin', Name: 'foo', Branch: '', SnapshotId: 'nope' }),
      'COMMIT_NOT_FOUND',
    );
  });

  test('state survives a restart (rebuilt from the pool); the store mirror was already up to date', async () => {
    const before = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: 'b1' });
    // Everything but users and the node's address record (its API port is a new free one here).
    const mirror = async () =>
      (await s.store.range('dotmesh.io/')).kvs.filter(
        (kv) => !kv.key.startsWith('dotmesh.io/users/') && !kv.key.startsWith('dotmesh.io/servers/addresses/'),
      );
    const mirrorBefore = (await mirror()).map((kv) => [kv.key, kv.value]);
    s = await s.restart();
    const after = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: 'b1' });
    assert.deepEqual(after, before);
    // The restart rewrote the mirror from the pool: the incremental writes had left it identical.
    assert.deepEqual(
      (await mirror()).map((kv) => [kv.key, kv.value]),
      mirrorBefore,
    );
  });

  test('delete removes the dot and its branches; the name is reusable', async () => {
    await s.admin.call('Delete', { Namespace: 'admin', Name: 'foo' });
    assert.deepEqual(await s.admin.call('List', null), {});
    assert.equal(await s.admin.call('Exists', { Namespace: 'admin', Name: 'foo', Branch: '' }), '');
    assert.deepEqual(await s.driver.listVolumes(), []);
    await rejectsCode(s.admin.call('Delete', { Namespace: 'admin', Name: 'foo' }), 'DOT_NOT_FOUND');
    await s.admin.call('Create', { Namespace: 'admin', Name: 'foo' });
  });

  test('auth: wrong key is 401, password works, ResetApiKey needs the password', async () => {
    await rejectsCode(s.client('admin', 'wrong').call('Ping', null), 'UNAUTHENTICATED');
    const byPassword = s.client('admin', s.password);
    assert.equal(await byPassword.call('Ping', null), true);
    await rejectsCode(s.admin.call('ResetApiKey', null), 'PERMISSION_DENIED', /Password authentication is required/);
    const { ApiKey } = await byPassword.call('ResetApiKey', null);
    assert.notEqual(ApiKey, s.apiKey);
    await rejectsCode(s.admin.call('Ping', null), 'UNAUTHENTICATED');
    assert.deepEqual(await s.client('admin', ApiKey).call('GetApiKey', null), { ApiKey });
  });
});
