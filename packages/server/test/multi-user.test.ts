import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DotmeshClient } from '@dotmesh/rpc';
import { type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';

/**
 * Users, namespaces and collaborators (issue "Push, pull and clone … with users, namespaces",
 * the part without a network): admin registers users, a namespace is a user name, owners add
 * and remove collaborators, nobody sees other users' dots.
 */
const APPLES = { Namespace: 'alice', Name: 'apples' };
const MASTER = { ...APPLES, Branch: '' };

describe('users, namespaces and collaborators (in-memory driver)', () => {
  let s: InProcessServer;
  let alice: DotmeshClient;
  let bob: DotmeshClient;
  let aliceId: string;
  let bobId: string;
  let applesId: string;

  const login = async (name: string, password: string) => {
    const { ApiKey } = await s.client(name, password).call('GetApiKey', null);
    return s.client(name, ApiKey);
  };

  before(async () => {
    s = await startInProcess();
  });
  after(async () => {
    await s.close();
  });

  test('admin registers users; duplicate names and emails are refused', async () => {
    const a = await s.admin.call('RegisterNewUser', { Name: 'alice', Email: 'alice@example.com', Password: 'alice-pw-1' });
    assert.equal(a.Name, 'alice');
    assert.equal(a.Email, 'alice@example.com');
    assert.match(a.Id, /^[0-9a-f-]{36}$/);
    assert.equal(Object.hasOwn(a, 'ApiKey'), false, 'a SafeUser carries no secrets');
    aliceId = a.Id;
    bobId = (await s.admin.call('RegisterNewUser', { Name: 'bob', Email: 'bob@example.com', Password: 'bob-pw-12' })).Id;
    await rejectsCode(
      s.admin.call('RegisterNewUser', { Name: 'alice', Email: 'other@example.com', Password: 'password1' }),
      'CONFLICT',
      /^Username already exists - contact help@dotmesh\.io$/,
    );
    await rejectsCode(
      s.admin.call('RegisterNewUser', { Name: 'admin', Email: 'x@example.com', Password: 'password1' }),
      'CONFLICT',
      /^Username already exists/,
    );
    await rejectsCode(
      s.admin.call('RegisterNewUser', { Name: 'carol', Email: 'alice@example.com', Password: 'password1' }),
      'CONFLICT',
      /^Email already exists - contact help@dotmesh\.io$/,
    );
    await rejectsCode(
      s.admin.call('RegisterNewUser', { Name: 'car/ol', Email: 'c@example.com', Password: 'password1' }),
      'INVALID_NAME',
      /may not contain '\/'/,
    );
    await rejectsCode(
      s.admin.call('RegisterNewUser', { Name: 'carol', Email: 'c@example.com', Password: 'short' }),
      'INVALID_ARGUMENT',
      /at least 7 characters/,
    );
    await rejectsCode(
      s.admin.call('RegisterNewUser', { Name: 'carol', Email: 'not-an-email', Password: 'password1' }),
      'INVALID_ARGUMENT',
      /email/,
    );
    alice = await login('alice', 'alice-pw-1');
    bob = await login('bob', 'bob-pw-12');
    assert.equal((await alice.call('CurrentUser', null)).Id, aliceId);
    await rejectsCode(
      alice.call('RegisterNewUser', { Name: 'mallory', Email: 'm@example.com', Password: 'password1' }),
      'NOT_ADMIN',
    );
  });

  test('users create dots only in their own namespace', async () => {
    assert.equal(await alice.call('Create', APPLES), true);
    applesId = await alice.call('Lookup', MASTER);
    await rejectsCode(
      bob.call('Create', { Namespace: 'alice', Name: 'bananas' }),
      'PERMISSION_DENIED',
      /^User is not an administrator for namespace alice, so cannot create volumes$/,
    );
    await rejectsCode(bob.call('Create', { Namespace: 'admin', Name: 'bananas' }), 'PERMISSION_DENIED');
    assert.equal(await bob.call('Create', { Namespace: 'bob', Name: 'bananas' }), true);
    const all = await s.admin.call('AllDotsAndBranches', null);
    const apples = all.Dots.find((d) => d.MasterBranch.Id === applesId);
    assert.equal(apples?.Owner.Id, aliceId);
    assert.deepEqual(apples?.Collaborators, []);
  });

  test("nobody sees other users' dots: they do not exist for them", async () => {
    assert.deepEqual(Object.keys(await bob.call('List', null)), ['bob']);
    assert.deepEqual(Object.keys(await bob.call('ListWithContainers', null)), ['bob']);
    assert.equal((await bob.call('AllDotsAndBranches', null)).Dots.length, 1);
    await rejectsCode(bob.call('Get', applesId), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('Lookup', MASTER), 'DOT_NOT_FOUND', /^No such filesystem named 'alice\/apples'$/);
    await rejectsCode(bob.call('Commits', MASTER), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('CommitsById', applesId), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('Branches', APPLES), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('Commit', { ...MASTER, Message: 'x', Metadata: {} }), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('Diff', { FilesystemID: applesId }), 'DOT_NOT_FOUND');
    assert.equal(await bob.call('Exists', MASTER), '');
    await rejectsCode(bob.call('Delete', APPLES), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('AddCollaborator', { MasterBranchID: applesId, Collaborator: 'bob' }), 'DOT_NOT_FOUND');
    assert.deepEqual(Object.keys(await alice.call('List', null)), ['alice']);
    assert.deepEqual(Object.keys(await s.admin.call('List', null)).sort(), ['alice', 'bob']);
  });

  test('owners add collaborators, who see, read and commit but do not delete or share', async () => {
    await rejectsCode(
      alice.call('AddCollaborator', { MasterBranchID: applesId, Collaborator: 'nobody' }),
      'INVALID_ARGUMENT',
      /Unable to locate collaborator/,
    );
    const first = await alice.call('Commit', { ...MASTER, Message: 'first', Metadata: {} });
    await alice.call('Branch', { ...APPLES, SourceBranch: 'master', NewBranchName: 'b1', SourceCommitId: first });
    const branchId = await alice.call('Exists', { ...APPLES, Branch: 'b1' });
    await rejectsCode(
      alice.call('AddCollaborator', { MasterBranchID: branchId, Collaborator: 'bob' }),
      'INVALID_ARGUMENT',
      /not of a master branch/,
    );
    assert.equal(await alice.call('AddCollaborator', { MasterBranchID: applesId, Collaborator: 'bob' }), true);
    assert.equal(await alice.call('AddCollaborator', { MasterBranchID: applesId, Collaborator: 'bob' }), true, 'idempotent');
    assert.deepEqual(Object.keys(await bob.call('List', null)).sort(), ['alice', 'bob']);
    assert.equal(await bob.call('Lookup', MASTER), applesId);
    assert.equal(await bob.call('Exists', MASTER), applesId);
    const id = await bob.call('Commit', { ...MASTER, Message: 'from bob', Metadata: {} });
    const commits = await alice.call('Commits', MASTER);
    assert.equal(commits.at(-1)?.Id, id);
    assert.equal(commits.at(-1)?.Metadata.author, 'bob');
    await rejectsCode(
      bob.call('Delete', APPLES),
      'PERMISSION_DENIED',
      /^Only the owner of alice\/apples or admin may delete it$/,
    );
    // Rollback is admin-only in the method table (as the original); rollbackBranch also checks ownership.
    await rejectsCode(bob.call('Rollback', { ...MASTER, SnapshotId: commits[0]!.Id }), 'NOT_ADMIN');
    await rejectsCode(bob.call('AddCollaborator', { MasterBranchID: applesId, Collaborator: 'bob' }), 'PERMISSION_DENIED');
    await rejectsCode(bob.call('RemoveCollaborator', { MasterBranchID: applesId, Collaborator: 'bob' }), 'PERMISSION_DENIED');
    await rejectsCode(
      alice.call('RemoveCollaborator', { MasterBranchID: applesId, Collaborator: 'alice' }),
      'INVALID_ARGUMENT',
      /cannot remove yourself/,
    );
    await rejectsCode(
      alice.call('AddCollaborator', { MasterBranchID: applesId, Collaborator: 'alice' }),
      'INVALID_ARGUMENT',
      /owns alice\/apples already/,
    );
    const all = await s.admin.call('AllDotsAndBranches', null);
    assert.deepEqual(
      all.Dots.find((d) => d.MasterBranch.Id === applesId)?.Collaborators.map((c) => c.Name),
      ['bob'],
    );
    const registry = await s.store.get('dotmesh.io/registry/filesystems/alice/apples');
    assert.deepEqual(JSON.parse(registry!.value).CollaboratorIds, [bobId]);
  });

  test('ownership and collaborators survive a restart (rebuilt from the pool)', async () => {
    await s.store.delete('dotmesh.io/registry/filesystems/alice/apples');
    s = await s.restart();
    alice = await login('alice', 'alice-pw-1');
    bob = await login('bob', 'bob-pw-12');
    assert.equal(await bob.call('Lookup', MASTER), applesId);
    const registry = await s.store.get('dotmesh.io/registry/filesystems/alice/apples');
    assert.deepEqual(JSON.parse(registry!.value), {
      Id: applesId,
      OwnerId: aliceId,
      Name: APPLES,
      CollaboratorIds: [bobId],
    });
  });

  test('owners remove collaborators; the dot is gone from their view', async () => {
    assert.equal(await alice.call('RemoveCollaborator', { MasterBranchID: applesId, Collaborator: 'bob' }), true);
    assert.deepEqual(Object.keys(await bob.call('List', null)), ['bob']);
    assert.equal(await bob.call('Exists', MASTER), '');
    await rejectsCode(bob.call('Get', applesId), 'DOT_NOT_FOUND');
    s = await s.restart();
    bob = await login('bob', 'bob-pw-12');
    alice = await login('alice', 'alice-pw-1');
    assert.equal(await bob.call('Exists', MASTER), '');
  });

  test('admin creates in any namespace (the user owns it) and sees and deletes everything', async () => {
    assert.equal(await s.admin.call('Create', { Namespace: 'alice', Name: 'pears' }), true);
    assert.equal(await s.admin.call('Create', { Namespace: 'nosuchuser', Name: 'plums' }), true);
    // Procure (the Docker/FlexVolume path) creates dots with the same owner rule.
    await s.admin.call('Procure', { Namespace: 'alice', Name: 'quinces', Subdot: '' });
    const all = await s.admin.call('AllDotsAndBranches', null);
    const owner = (ns: string, name: string) =>
      all.Dots.find((d) => d.MasterBranch.Name.Namespace === ns && d.MasterBranch.Name.Name === name)?.Owner.Name;
    assert.equal(owner('alice', 'pears'), 'alice');
    assert.equal(owner('nosuchuser', 'plums'), 'admin');
    assert.equal(owner('alice', 'quinces'), 'alice');
    assert.equal(await alice.call('Delete', { Namespace: 'alice', Name: 'quinces' }), true, 'so alice may delete it');
    assert.deepEqual(Object.keys((await alice.call('List', null)).alice ?? {}).sort(), ['apples', 'pears']);
    const pearsId = await alice.call('Lookup', { Namespace: 'alice', Name: 'pears', Branch: '' });
    assert.equal(await s.admin.call('AddCollaborator', { MasterBranchID: pearsId, Collaborator: 'bob' }), true);
    assert.equal(await bob.call('Exists', { Namespace: 'alice', Name: 'pears', Branch: '' }), pearsId);
    assert.equal(await s.admin.call('Delete', { Namespace: 'alice', Name: 'pears' }), true);
    assert.equal(await alice.call('Delete', APPLES), true, 'the owner deletes');
    assert.deepEqual(Object.keys(await alice.call('List', null)), []);
  });

  test('UpdatePassword needs password authentication and 7 characters', async () => {
    await rejectsCode(
      alice.call('UpdatePassword', { NewPassword: 'new-password' }),
      'PERMISSION_DENIED',
      /Password authentication/,
    );
    const withPassword = s.client('alice', 'alice-pw-1');
    await rejectsCode(withPassword.call('UpdatePassword', { NewPassword: 'short' }), 'INVALID_ARGUMENT', /at least 7/);
    assert.equal((await withPassword.call('UpdatePassword', { NewPassword: 'new-password' })).Name, 'alice');
    await rejectsCode(s.client('alice', 'alice-pw-1').call('CurrentUser', null), 'UNAUTHENTICATED');
    assert.equal((await s.client('alice', 'new-password').call('CurrentUser', null)).Name, 'alice');
    assert.equal((await alice.call('CurrentUser', null)).Name, 'alice', 'the API key still works');
  });
});
