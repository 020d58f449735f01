import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rejectsWithCode, vid, type WithHarness } from './conformance-util.ts';
import type { FileChange } from './driver.ts';

/** `R a -> b` / `M a`: compact, readable expectations. */
const show = (changes: readonly FileChange[]) =>
  changes.map((c) => (c.to === undefined ? `${c.change} ${c.filename}` : `R ${c.filename} -> ${c.to}`));

/** Conformance cases: diff between commits and against the live state. */
export function diffCases(withHarness: WithHarness): void {
  test(
    'diff: add, modify, delete in the live state vs a commit; driver metadata never shows',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await h.writeFile(id, 'keep.txt', 'same');
      await h.writeFile(id, 'mod.txt', 'v1');
      await h.writeFile(id, 'gone.txt', 'bye');
      await d.commit(id, 'c1', { message: 'one' });
      const c1 = { volumeId: id, commitId: 'c1' };
      const live = { volumeId: id, live: true as const };
      assert.deepEqual(await d.diff(c1, live), [], 'no changes right after a commit');
      assert.deepEqual(await d.diff(c1, c1), [], 'a commit against itself');
      await h.writeFile(id, 'mod.txt', 'v2 longer');
      await h.writeFile(id, 'new file.txt', 'hello');
      await h.removeFile(id, 'gone.txt');
      assert.deepEqual(show(await d.diff(c1, live)), ['- gone.txt', 'M mod.txt', '+ new file.txt']);
      await d.commit(id, 'c2', { message: 'two' });
      assert.deepEqual(await d.diff({ volumeId: id, commitId: 'c2' }, live), []);
    }),
  );

  test(
    'diff: a moved file is R; nested directories appear and disappear with their files',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await h.writeFile(id, 'a.txt', 'moving content');
      await h.writeFile(id, 'old/deep/f', 'x');
      await d.commit(id, 'c1', {});
      const c1 = { volumeId: id, commitId: 'c1' };
      const live = { volumeId: id, live: true as const };
      await h.renamePath(id, 'a.txt', 'b.txt');
      assert.deepEqual(show(await d.diff(c1, live)), ['R a.txt -> b.txt']);
      await h.writeFile(id, 'n1/n2/q', 'q');
      await h.removePath(id, 'old');
      assert.deepEqual(show(await d.diff(c1, live)), [
        'R a.txt -> b.txt',
        '+ n1',
        '+ n1/n2',
        '+ n1/n2/q',
        '- old',
        '- old/deep',
        '- old/deep/f',
      ]);
    }),
  );

  test(
    'diff: commit vs commit in both directions, across a branch; live of a branch',
    withHarness(async (h, d) => {
      const a = vid();
      const b = vid();
      await d.createVolume(a, {});
      await h.writeFile(a, 'f', '1');
      await h.writeFile(a, 'g', 'g');
      await d.commit(a, 'c1', {});
      await h.writeFile(a, 'f', '22');
      await h.writeFile(a, 'h', 'h');
      await d.commit(a, 'c2', {});
      const c1 = { volumeId: a, commitId: 'c1' };
      const c2 = { volumeId: a, commitId: 'c2' };
      assert.deepEqual(show(await d.diff(c1, c2)), ['M f', '+ h']);
      assert.deepEqual(show(await d.diff(c2, c1)), ['M f', '- h']);
      await d.createVolume(b, {}, { from: c1 });
      assert.deepEqual(await d.diff(c1, { volumeId: b, live: true }), [], 'a new branch equals its origin');
      await h.removeFile(b, 'g');
      await d.commit(b, 'b1', {});
      assert.deepEqual(show(await d.diff(c2, { volumeId: b, commitId: 'b1' })), ['M f', '- g', '- h']);
      assert.deepEqual(show(await d.diff(c1, { volumeId: b, live: true })), ['- g']);
    }),
  );

  test(
    'diff: leaves the dirty state, commits and the pool as they were; unknown sides fail',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await h.writeFile(id, 'f', 'x');
      await d.commit(id, 'c1', {});
      const c1 = { volumeId: id, commitId: 'c1' };
      const live = { volumeId: id, live: true as const };
      const dirty = async () => (await d.sizes([id])).get(id)?.dirty;
      await d.diff(c1, live);
      await d.diff(c1, live);
      assert.equal(await dirty(), false, 'diffing a clean live keeps it clean');
      await h.writeFile(id, 'f', 'y');
      assert.deepEqual(show(await d.diff(c1, live)), ['M f']);
      assert.equal(await dirty(), true, 'and a dirty one dirty');
      await d.commit(id, 'c2', {});
      assert.equal(await dirty(), false);
      await d.diff(c1, live);
      await h.writeFile(id, 'f', 'z');
      assert.equal(await dirty(), true, 'a write after a diff reads dirty');
      await d.rollback(id, c1);
      await d.diff(c1, live);
      assert.equal(await dirty(), false, 'clean after rollback and diff');
      assert.deepEqual(
        (await d.listCommits(id)).map((c) => c.id),
        ['c1', 'c2'],
      );
      assert.deepEqual((await d.open()).actions, [], 'nothing left behind for recovery');
      await rejectsWithCode(d.diff({ volumeId: id, commitId: 'nope' }, live), 'COMMIT_NOT_FOUND');
      await rejectsWithCode(d.diff(c1, { volumeId: id, commitId: 'nope' }), 'COMMIT_NOT_FOUND');
      await rejectsWithCode(d.diff(c1, { volumeId: vid(), live: true }), 'BRANCH_NOT_FOUND');
      await rejectsWithCode(d.diff({ volumeId: '../x', commitId: 'c1' }, live), 'INVALID_ARGUMENT');
    }),
  );
}
