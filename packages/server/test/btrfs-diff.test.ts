import assert from 'node:assert/strict';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type ServerProcess, skipUnless, startServerProcess } from '@dotmesh/testkit';

const skip = skipUnless(['root', 'btrfs', 'losetup']);
const dot = { Namespace: 'admin', Name: 'data' };
const lines = (files: { change: string; filename: string; to?: string }[]) =>
  files.map((f) => (f.to === undefined ? `${f.change} ${f.filename}` : `R ${f.filename} -> ${f.to}`));

describe('diff, LastModified, MountCommit, metrics on a real btrfs server', { skip }, () => {
  const cleanup = new Cleanup();
  let s: ServerProcess;
  let path = '';
  let fsId = '';
  const commit = (Message: string) => s.admin.call('Commit', { ...dot, Branch: '', Message, Metadata: {} });
  const http = (p: string) =>
    fetch(`${s.url.replace(/\/rpc$/, '')}${p}`, {
      headers: { Authorization: `Basic ${Buffer.from(`admin:${s.apiKey}`).toString('base64')}` },
    });
  before(async () => {
    s = await startServerProcess({ cleanup });
    path = await s.admin.call('Procure', { ...dot, Subdot: '' });
    fsId = await s.admin.call('Lookup', { ...dot, Branch: '' });
  });
  after(async () => cleanup.run());

  test('Diff/DiffCommits/GET /diff follow the files; diffing a clean dot keeps it clean', async () => {
    await writeFile(join(path, 'keep.txt'), 'k');
    await writeFile(join(path, 'mod.txt'), 'v1');
    await writeFile(join(path, 'gone.txt'), 'g');
    await mkdir(join(path, 'dir'));
    await writeFile(join(path, 'dir', 'f'), 'f');
    const c1 = await commit('first');
    assert.deepEqual(await s.admin.call('Diff', { FilesystemID: fsId }), { Files: [] });
    assert.equal((await s.admin.call('Get', fsId)).DirtyBytes, 0, 'a diff of a clean dot leaves it clean');
    await writeFile(join(path, 'mod.txt'), 'v2, longer');
    await rm(join(path, 'gone.txt'));
    await rename(join(path, 'dir'), join(path, 'dir2'));
    await writeFile(join(path, 'new file'), 'n');
    const expected = ['R dir -> dir2', '- gone.txt', 'M mod.txt', '+ new file'];
    assert.deepEqual(lines((await s.admin.call('Diff', { FilesystemID: fsId })).Files), expected);
    assert.deepEqual(lines((await (await http('/diff/admin:data')).json()) as never), expected);
    assert.ok((await s.admin.call('Get', fsId)).DirtyBytes > 0, 'still dirty after a diff');
    const c2 = await commit('second');
    assert.equal((await s.admin.call('Get', fsId)).DirtyBytes, 0);
    const between = await s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: c1, ToCommit: c2 });
    assert.deepEqual(
      lines(between.Files),
      expected.map((l) => l.replace(/ (?=\S)/, ' __default__/').replace('-> ', '-> __default__/')),
    );
    assert.deepEqual(await s.admin.call('DiffCommits', { ...dot, Branch: '', FromCommit: 'HEAD', ToCommit: '' }), { Files: [] });
    assert.equal((await s.admin.call('Get', fsId)).DirtyBytes, 0);
    assert.deepEqual(lines((await (await http(`/diff/admin:data/${c1}`)).json()) as never), expected);
    assert.equal((await http('/diff/admin:nope')).status, 412);
  });

  test('LastModified: the latest commit time when clean, the changed file ctime when dirty', async () => {
    const head = (await s.admin.call('Commits', { ...dot, Branch: '' })).at(-1)!;
    const clean = await s.admin.call('LastModified', dot);
    assert.equal(Date.parse(clean.Time), Math.floor(Number(BigInt(head.Metadata.timestamp!) / 1_000_000n) / 1000) * 1000);
    await new Promise((r) => setTimeout(r, 1100));
    await writeFile(join(path, 'later.txt'), 'l');
    const ctime = (await stat(join(path, 'later.txt'))).ctimeMs;
    const dirty = await s.admin.call('LastModified', dot);
    assert.equal(Date.parse(dirty.Time), Math.floor(ctime / 1000) * 1000);
    await rm(join(path, 'later.txt'));
  });

  test('MountCommit: a read-only path holding the commit', async () => {
    const commits = await s.admin.call('Commits', { ...dot, Branch: '' });
    const first = commits.find((c) => c.Metadata.message === 'first')!;
    const mounted = await s.admin.call('MountCommit', { FilesystemId: fsId, CommitId: first.Id });
    assert.equal(await readFile(join(mounted, '__default__', 'mod.txt'), 'utf8'), 'v1');
    assert.equal(await readFile(join(mounted, '__default__', 'dir', 'f'), 'utf8'), 'f');
    await assert.rejects(writeFile(join(mounted, '__default__', 'mod.txt'), 'x'), { code: 'EROFS' });
    assert.equal(await s.admin.call('ForceBranchMasterById', { FilesystemId: fsId, Master: '' }), true);
  });

  test('metrics: pool bytes of the real pool and the operations done', async () => {
    const text = await (await fetch(`${s.url.replace(/\/rpc$/, '')}/metrics`)).text();
    const total = Number(/^dm_pool_bytes\{kind="total"\} (\S+)$/m.exec(text)?.[1]);
    const usage = Number(/^dm_zpool_usage_percentage (\S+)$/m.exec(text)?.[1]);
    assert.ok(total > 100 * 1024 * 1024, `total ${total}`);
    assert.ok(usage > 0 && usage < 100, `usage ${usage}`);
    assert.match(text, /^dm_state_transition_total\{op="commit",result="ok"\} 2$/m);
    assert.match(text, /^dm_dots 1$/m);
  });
});
