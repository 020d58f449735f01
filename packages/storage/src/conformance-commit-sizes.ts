import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { rejectsWithCode, vid, type WithHarness } from './conformance-util.ts';
import type { CommitSizes } from './driver.ts';

const KiB = 1024;
/** btrfs counts whole 4 KiB blocks and leaves tiny inline files out: allow a little slack. */
const SLACK = 16 * KiB;

function near(actual: number | undefined, expected: number, what: string): void {
  assert.ok(actual !== undefined, `${what}: missing`);
  assert.ok(Math.abs(actual - expected) <= SLACK, `${what}: ${actual} bytes, expected about ${expected}`);
}

function sizeOf(sizes: Map<string, CommitSizes>, commitId: string): CommitSizes {
  const s = sizes.get(commitId);
  assert.ok(s, `no sizes for commit ${commitId} (got ${[...sizes.keys()].join(', ')})`);
  return s;
}

/** Conformance cases: per-commit space (what deleting one commit frees) and its invalidation. */
export function commitSizeCases(withHarness: WithHarness): void {
  test(
    'commitSizes: referenced and exclusive bytes follow deletions, branches and live writes',
    withHarness(async (h, d) => {
      const id = vid();
      await d.createVolume(id, {});
      await h.writeFile(id, 'a', randomBytes(64 * KiB));
      await d.commit(id, 'c1', {});
      await h.writeFile(id, 'b', randomBytes(128 * KiB));
      await d.commit(id, 'c2', {});
      await h.removeFile(id, 'a');
      await h.removeFile(id, 'b');
      await h.writeFile(id, 'c', randomBytes(32 * KiB));
      await d.commit(id, 'c3', {});

      let sizes = await d.commitSizes(id);
      assert.deepEqual([...sizes.keys()].sort(), ['c1', 'c2', 'c3']);
      near(sizeOf(sizes, 'c1').referencedBytes, 64 * KiB, 'c1 referenced');
      near(sizeOf(sizes, 'c1').exclusiveBytes, 0, 'c1 exclusive (a is shared with c2)');
      near(sizeOf(sizes, 'c2').referencedBytes, 192 * KiB, 'c2 referenced');
      near(sizeOf(sizes, 'c2').exclusiveBytes, 128 * KiB, 'c2 exclusive (b)');
      near(sizeOf(sizes, 'c3').exclusiveBytes, 0, 'c3 exclusive (c is still in the live state)');

      await d.deleteCommit(id, 'c2');
      sizes = await d.commitSizes(id);
      assert.deepEqual([...sizes.keys()].sort(), ['c1', 'c3']);
      near(sizeOf(sizes, 'c1').exclusiveBytes, 64 * KiB, 'c1 exclusive once c2 is gone');

      await h.writeFile(id, 'c', randomBytes(32 * KiB));
      near(sizeOf(await d.commitSizes(id), 'c3').exclusiveBytes, 32 * KiB, 'c3 exclusive once the live overwrote c');

      const branch = vid();
      await d.createVolume(branch, {}, { from: { volumeId: id, commitId: 'c1' } });
      near(sizeOf(await d.commitSizes(id), 'c1').exclusiveBytes, 0, 'c1 exclusive while a branch shares it');
      assert.deepEqual(await d.commitSizes(branch), new Map());

      await rejectsWithCode(d.commitSizes(vid()), 'BRANCH_NOT_FOUND');
    }),
  );
}
