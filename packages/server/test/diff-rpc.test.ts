import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MemoryDriver, StorageDriver } from '@dotmesh/storage';
import { withCredentials } from '../src/auth/user-record.ts';
import { UserService } from '../src/auth/users.ts';
import { type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';

/** Diff, DiffCommits, GET /diff, LastModified, MountCommit, ForceBranchMasterById on the memory driver. */

const dot = { Namespace: 'admin', Name: 'd' };
type DiffFile = { change: string; filename: string; to?: string };
const lines = (files: DiffFile[]) =>
  files.map((f) => (f.to === undefined ? `${f.change} ${f.filename}` : `R ${f.filename} -> ${f.to}`));

describe('diff and single-node inspection methods (in-process)', () => {
  let s: InProcessServer;
  let mem: MemoryDriver;
  let fsId = '';
  const getDiff = (path: string, auth = `admin:${s.apiKey}`) =>
    fetch(`${s.url.replace(/\/rpc$/, '')}${path}`, {
      headers: { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` },
    });
  const commit = (Message: string, Branch = '') => s.admin.call('Commit', { ...dot, Branch, Message, Metadata: {} });

  before(async () => {
    s = await startInProcess();
    mem = s.driver as StorageDriver as MemoryDriver;
    await s.admin.call('Create', dot);
    fsId = await s.admin.call('Lookup', { ...dot, Branch: '' });
  });
  after(async () => s.close());

  test('Diff shows the default subdot vs the latest commit; DiffCommits the whole dot', async () => {
    assert.deepEqual(await s.admin.call('Diff', { FilesystemID: fsId }), { Files: [] });
    await mem.writeFile(fsId, '__default__/a.txt', 'one');
    await mem.writeFile(fsId, '__default__/sub/b.txt', 'two');
    await mem.writeFile(fsId, 'frogs/x', 'other subdot');
    // Lower-case keys on purpose: the original's Go decoder matched field names case-insensitively.
    const diff = await s.admin.call('Diff', { filesystemid: fsId } as unknown as { FilesystemID: string });
    assert.deepEqual(lines(diff.Files), ['+ a.txt', '+ sub', '+ sub/b.txt']);
    const whole = await s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: '', ToCommit: '' });
    assert.deepEqual(lines(whole.Files), [
      '+ __default__/a.txt',
      '+ __default__/sub',
      '+ __default__/sub/b.txt',
      '+ frogs',
      '+ frogs/x',
    ]);
    const c1 = await commit('first');
    assert.deepEqual(await s.admin.call('Diff', { FilesystemID: fsId }), { Files: [] });
    await mem.writeFile(fsId, '__default__/a.txt', 'changed');
    await mem.renamePath(fsId, '__default__/sub/b.txt', '__default__/sub/c.txt');
    await mem.removePath(fsId, 'frogs');
    assert.deepEqual(lines((await s.admin.call('Diff', { FilesystemID: fsId })).Files), ['M a.txt', 'R sub/b.txt -> sub/c.txt']);
    const c2 = await commit('second');
    const between = await s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: c1, ToCommit: c2 });
    assert.deepEqual(lines(between.Files), [
      'M __default__/a.txt',
      'R __default__/sub/b.txt -> __default__/sub/c.txt',
      '- frogs',
      '- frogs/x',
    ]);
    const byRef = await s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: 'HEAD^', ToCommit: 'HEAD' });
    assert.deepEqual(byRef, between);
    const reverse = await s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: c2, ToCommit: c1 });
    assert.deepEqual(lines(reverse.Files).slice(0, 2), [
      'M __default__/a.txt',
      'R __default__/sub/c.txt -> __default__/sub/b.txt',
    ]);
  });

  test('DiffCommits on a branch reaches commits of its origin and of other branches; errors name the commit', async () => {
    const commits = await s.admin.call('Commits', { ...dot, Branch: '' });
    const head = commits.at(-1)!.Id;
    await s.admin.call('Branch', { ...dot, SourceBranch: 'master', NewBranchName: 'b1', SourceCommitId: head });
    const branchId = await s.admin.call('Lookup', { ...dot, Branch: 'b1' });
    assert.deepEqual(await s.admin.call('Diff', { FilesystemID: branchId }), { Files: [] }, 'a new branch equals its origin');
    await mem.writeFile(branchId, '__default__/only-on-b1', 'b');
    const onBranch = await commit('on b1', 'b1');
    const vsMaster = await s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: onBranch, ToCommit: 'HEAD' });
    assert.deepEqual(lines(vsMaster.Files), ['- __default__/only-on-b1']);
    await rejectsCode(
      s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: 'nope', ToCommit: '' }),
      'COMMIT_NOT_FOUND',
      /No commit "nope" in admin\/d/,
    );
    await rejectsCode(
      s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: 'HEAD^^^^^^', ToCommit: '' }),
      'COMMIT_NOT_FOUND',
    );
    await rejectsCode(s.admin.call('DiffCommits', { ...dot, Branch: 'nob', FromCommit: '', ToCommit: '' }), 'BRANCH_NOT_FOUND');
    await rejectsCode(s.admin.call('Diff', { FilesystemID: '00000000-0000-4000-8000-000000000000' }), 'DOT_NOT_FOUND');
    await rejectsCode(s.admin.call('Diff', { FilesystemID: '' }), 'INVALID_ARGUMENT');
  });

  test('GET /diff/<ns>:<name>[/<commit>]: JSON list, 401, 412, 400, 404', async () => {
    await mem.writeFile(fsId, '__default__/live.txt', 'x');
    let r = await getDiff('/diff/admin:d');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(await r.json(), [{ change: '+', filename: 'live.txt' }]);
    const first = (await s.admin.call('Commits', { ...dot, Branch: '' }))[1]!.Id;
    r = await getDiff(`/diff/admin:d/${first}`);
    assert.deepEqual(lines((await r.json()) as DiffFile[]), ['M a.txt', '+ live.txt', 'R sub/b.txt -> sub/c.txt']);
    assert.equal((await getDiff('/diff/admin:d', 'admin:wrong')).status, 401);
    assert.equal((await fetch(`${s.url.replace(/\/rpc$/, '')}/diff/admin:d`)).status, 401);
    assert.equal((await getDiff('/diff/admin:missing')).status, 412);
    assert.equal((await getDiff('/diff/admin-d')).status, 400);
    assert.equal((await getDiff('/diff/admin:d/nope')).status, 404);
    assert.equal((await getDiff('/diff/admin:..%2F..')).status, 400);
    await mem.removeFile(fsId, '__default__/live.txt');
  });

  test('LastModified: the latest commit time when clean, a recent time when dirty', async () => {
    const commits = await s.admin.call('Commits', { ...dot, Branch: '' });
    const headNs = BigInt(commits.at(-1)!.Metadata.timestamp!);
    const clean = await s.admin.call('LastModified', dot);
    assert.match(clean.Time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(Date.parse(clean.Time), Math.floor(Number(headNs / 1_000_000n) / 1000) * 1000);
    const before = Math.floor(Date.now() / 1000) * 1000;
    await mem.writeFile(fsId, '__default__/new', 'n');
    const dirty = Date.parse((await s.admin.call('LastModified', dot)).Time);
    assert.ok(dirty >= before && dirty <= Date.now(), `${dirty} within the call`);
    await rejectsCode(s.admin.call('LastModified', { Namespace: 'admin', Name: 'missing' }), 'DOT_NOT_FOUND');
  });

  test('MountCommit gives the commit path of a commit in the history; ForceBranchMasterById on one node', async () => {
    const commits = await s.admin.call('Commits', { ...dot, Branch: '' });
    const c = commits.at(-1)!.Id;
    assert.equal(await s.admin.call('MountCommit', { FilesystemId: fsId, CommitId: c }), s.driver.commitPath(fsId, c));
    const branchId = await s.admin.call('Lookup', { ...dot, Branch: 'b1' });
    assert.equal(
      await s.admin.call('MountCommit', { FilesystemId: branchId, CommitId: c }),
      s.driver.commitPath(fsId, c),
      'a commit of the origin, seen from the branch',
    );
    await rejectsCode(s.admin.call('MountCommit', { FilesystemId: fsId, CommitId: 'nope' }), 'COMMIT_NOT_FOUND');
    await rejectsCode(s.admin.call('MountCommit', { FilesystemId: fsId, CommitId: '../x' }), 'INVALID_NAME');
    assert.equal(await s.admin.call('ForceBranchMasterById', { FilesystemId: fsId, Master: '' }), true);
    assert.equal(await s.admin.call('ForceBranchMasterById', { FilesystemId: fsId, Master: 'feedfacecafe0001' }), true);
    await rejectsCode(
      s.admin.call('ForceBranchMasterById', { FilesystemId: fsId, Master: 'another-node' }),
      'INVALID_ARGUMENT',
      /"another-node" is not a live node of this cluster/,
    );
  });

  test('another user sees none of it (ForceBranchMasterById is admin only)', async () => {
    const bobId = { Id: '11111111-2222-4333-8444-555555555555', Name: 'bob', Email: 'bob@example.com', Metadata: {} };
    await new UserService(s.store).save(await withCredentials(bobId, 'bob-password', 'BOBKEY'));
    const bob = s.client('bob', 'BOBKEY');
    await rejectsCode(bob.call('Diff', { FilesystemID: fsId }), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('ForceBranchMasterById', { FilesystemId: fsId, Master: '' }), 'NOT_ADMIN');
    await rejectsCode(bob.call('MountCommit', { FilesystemId: fsId, CommitId: 'x' }), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('LastModified', dot), 'DOT_NOT_FOUND');
    await rejectsCode(bob.call('DiffCommits', { ...dot, Branch: '', FromCommit: '', ToCommit: '' }), 'DOT_NOT_FOUND');
    assert.equal((await getDiff('/diff/admin:d', 'bob:BOBKEY')).status, 412);
  });
});
