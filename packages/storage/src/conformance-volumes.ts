import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rejectsWithCode, text, vid, type WithHarness } from './conformance-util.ts';

/** Conformance cases: volumes, labels, commits, branches, rollback, delete. */
export function volumeCases(withHarness: WithHarness): void {
  test(
    'create: an empty volume is listed with its label; duplicate create conflicts',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, { name: 'master', n: 1 });
      const vols = await d.listVolumes();
      assert.deepEqual(
        vols.find((v) => v.id === id),
        { id, label: { name: 'master', n: 1 } },
      );
      assert.deepEqual(await d.listCommits(id), []);
      await rejectsWithCode(d.createVolume(id, { other: true }), 'CONFLICT');
      assert.deepEqual(await d.readLabel(id), { name: 'master', n: 1 });
      await d.writeLabel(id, { name: 'renamed' });
      assert.deepEqual(await d.readLabel(id), { name: 'renamed' });
      await h.writeFile(id, 'a.txt', 'x');
      assert.equal(text(await h.readFile(id, 'a.txt')), 'x');
    }),
  );

  test(
    'ensureDirectory: idempotent, committed with the volume, refuses escapes',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await d.ensureDirectory(id, '__default__');
      await d.ensureDirectory(id, 'sub/deeper');
      await d.ensureDirectory(id, 'sub/deeper');
      await h.writeFile(id, 'sub/deeper/f', 'x');
      await d.commit(id, 'c1', {});
      assert.equal(text(await h.readCommitFile(id, 'c1', 'sub/deeper/f')), 'x');
      assert.equal((await d.sizes([id])).get(id)?.dirty, false);
      await d.ensureDirectory(id, 'sub');
      assert.equal((await d.sizes([id])).get(id)?.dirty, false, 'an existing directory is not a write');
      for (const bad of ['../x', '/abs', 'a/../b', '', 'a//b'])
        await rejectsWithCode(d.ensureDirectory(id, bad), 'INVALID_ARGUMENT');
    }),
  );

  test(
    'removeDirectory and listDirectory: a subdot goes with everything in it; idempotent; refuses escapes',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await d.ensureDirectory(id, 'keep');
      await d.ensureDirectory(id, 'gone/deeper');
      await h.writeFile(id, 'gone/deeper/f', 'x');
      await h.writeFile(id, 'keep/g', 'y');
      assert.deepEqual(
        (await d.listDirectory(id, '')).filter((n) => n !== 'dotmesh.metadata'),
        ['gone', 'keep'],
      );
      assert.deepEqual(await d.listDirectory(id, 'gone'), ['deeper']);
      await d.removeDirectory(id, 'gone');
      await d.removeDirectory(id, 'gone');
      await d.removeDirectory(id, 'never/was');
      assert.deepEqual(
        (await d.listDirectory(id, '')).filter((n) => n !== 'dotmesh.metadata'),
        ['keep'],
      );
      assert.deepEqual(await d.listDirectory(id, 'gone'), []);
      assert.equal(text(await h.readFile(id, 'keep/g')), 'y');
      for (const bad of ['../x', '/abs', 'a/../b', '', 'a//b'])
        await rejectsWithCode(d.removeDirectory(id, bad), 'INVALID_ARGUMENT');
    }),
  );

  test(
    'invalid ids are refused before touching anything',
    withHarness(async (_h, d) => {
      await rejectsWithCode(d.createVolume('../escape', {}), 'INVALID_ARGUMENT');
      await rejectsWithCode(d.createVolume('a/b', {}), 'INVALID_ARGUMENT');
      const id = vid();
      await d.createVolume(id, {});
      await rejectsWithCode(d.commit(id, '..', {}), 'INVALID_ARGUMENT');
      await rejectsWithCode(d.commit(id, 'x'.repeat(65), {}), 'INVALID_ARGUMENT');
    }),
  );

  test(
    'commit freezes content; id conflict; listCommits in seq order with meta',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await h.writeFile(id, 'dir/f.txt', 'one');
      const c1 = await d.commit(id, 'c1', { message: 'first', n: 1 });
      assert.equal(c1.id, 'c1');
      assert.deepEqual(c1.meta, { message: 'first', n: 1 });
      await h.writeFile(id, 'dir/f.txt', 'two');
      assert.equal(text(await h.readCommitFile(id, 'c1', 'dir/f.txt')), 'one');
      assert.equal(text(await h.readFile(id, 'dir/f.txt')), 'two');
      await rejectsWithCode(d.commit(id, 'c1', {}), 'COMMIT_EXISTS');
      await d.commit(id, 'c2', { message: 'second' });
      await d.commit(id, 'a0', { message: 'third' });
      const list = await d.listCommits(id);
      assert.deepEqual(
        list.map((c) => c.id),
        ['c1', 'c2', 'a0'],
      );
      assert.ok(list[0]!.seq < list[1]!.seq && list[1]!.seq < list[2]!.seq);
      assert.deepEqual(list[0]!.meta, { message: 'first', n: 1 });
      assert.equal(text(await h.readCommitFile(id, 'c2', 'dir/f.txt')), 'two');
    }),
  );

  test(
    'deleteCommit is idempotent and seq is never reused',
    withHarness(async (_h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await d.commit(id, 'c1', {});
      const c2 = await d.commit(id, 'c2', {});
      await d.deleteCommit(id, 'c2');
      await d.deleteCommit(id, 'c2');
      assert.deepEqual(
        (await d.listCommits(id)).map((c) => c.id),
        ['c1'],
      );
      const c3 = await d.commit(id, 'c3', {});
      assert.ok(c3.seq > c2.seq, `seq ${c3.seq} must exceed deleted ${c2.seq}`);
    }),
  );

  test(
    'branch from a commit: independent writes both ways',
    withHarness(async (h, d) => {
      const a = vid();
      const b = vid();
      await d.createVolume(a, {});
      await h.writeFile(a, 'f', 'base');
      await d.commit(a, 'c1', {});
      await d.createVolume(b, { branch: 'b' }, { from: { volumeId: a, commitId: 'c1' } });
      assert.equal(text(await h.readFile(b, 'f')), 'base');
      assert.deepEqual(await d.listCommits(b), []);
      await h.writeFile(b, 'f', 'on b');
      await h.writeFile(a, 'f', 'on a');
      assert.equal(text(await h.readFile(b, 'f')), 'on b');
      assert.equal(text(await h.readFile(a, 'f')), 'on a');
      assert.equal(text(await h.readCommitFile(a, 'c1', 'f')), 'base');
      await rejectsWithCode(d.createVolume(vid(), {}, { from: { volumeId: a, commitId: 'nope' } }), 'COMMIT_NOT_FOUND');
    }),
  );

  test(
    "rollback to an own commit and to another volume's commit; commits untouched",
    withHarness(async (h, d) => {
      const a = vid();
      const b = vid();
      await d.createVolume(a, {});
      await h.writeFile(a, 'f', 'v1');
      await d.commit(a, 'c1', {});
      await h.writeFile(a, 'f', 'v2');
      await h.writeFile(a, 'extra', 'x');
      await d.commit(a, 'c2', {});
      await h.writeFile(a, 'f', 'v3');
      await d.rollback(a, { volumeId: a, commitId: 'c1' });
      assert.equal(text(await h.readFile(a, 'f')), 'v1');
      await assert.rejects(h.readFile(a, 'extra'));
      assert.deepEqual(
        (await d.listCommits(a)).map((c) => c.id),
        ['c1', 'c2'],
      );
      assert.equal(text(await h.readCommitFile(a, 'c2', 'f')), 'v2');
      assert.equal((await d.sizes([a])).get(a)?.dirty, false);
      await d.createVolume(b, {});
      await h.writeFile(b, 'g', 'bee');
      await d.rollback(b, { volumeId: a, commitId: 'c2' });
      assert.equal(text(await h.readFile(b, 'f')), 'v2');
      await assert.rejects(h.readFile(b, 'g'));
      assert.deepEqual(await d.listCommits(b), []);
      await rejectsWithCode(d.rollback(a, { volumeId: a, commitId: 'missing' }), 'COMMIT_NOT_FOUND');
      assert.equal(text(await h.readFile(a, 'f')), 'v1');
    }),
  );

  test(
    'delete is idempotent and removes the volume from the list',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await h.writeFile(id, 'f', 'x');
      await d.commit(id, 'c1', {});
      await d.deleteVolume(id);
      await d.deleteVolume(id);
      assert.equal(
        (await d.listVolumes()).some((v) => v.id === id),
        false,
      );
      await d.createVolume(id, { again: true });
      assert.deepEqual(await d.listCommits(id), []);
    }),
  );
}
