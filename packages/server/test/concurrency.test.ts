import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MemoryDriver } from '@dotmesh/storage';
import { type InProcessServer, startInProcess } from './in-process.ts';

/**
 * Mutations of one branch are serialised (one queue per branch); mutations of different dots
 * run in parallel: a commit held up on one dot does not hold up another dot.
 */
class GatedDriver extends MemoryDriver {
  gate: { volume: string; release: Promise<void> } | undefined;
  override async commit(id: string, commitId: string, meta: Record<string, unknown>) {
    if (this.gate && this.gate.volume === id) await this.gate.release;
    return super.commit(id, commitId, meta);
  }
}

describe('per-branch queues, parallel dots', () => {
  let s: InProcessServer;
  const driver = new GatedDriver({ poolId: 'feedfacecafe0002' });
  before(async () => {
    s = await startInProcess({ driver });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'slow' });
    await s.admin.call('Create', { Namespace: 'admin', Name: 'fast' });
  });
  after(async () => s.close());

  test('a stuck commit on one dot does not block another dot', async () => {
    const slowId = await s.admin.call('Lookup', { Namespace: 'admin', Name: 'slow', Branch: '' });
    let release!: () => void;
    driver.gate = { volume: slowId, release: new Promise<void>((r) => (release = r)) };
    const slow = s.admin.call('Commit', { Namespace: 'admin', Name: 'slow', Branch: '', Message: 'slow', Metadata: {} });
    const fast = await s.admin.call('Commit', { Namespace: 'admin', Name: 'fast', Branch: '', Message: 'fast', Metadata: {} });
    assert.equal(typeof fast, 'string', 'the other dot committed while the first was stuck');
    const slowBefore = await s.admin.call('Commits', { Namespace: 'admin', Name: 'slow', Branch: '' });
    assert.equal(slowBefore.length, 1, 'the stuck commit is not visible yet');
    release();
    await slow;
    driver.gate = undefined;
  });

  test('concurrent commits on one branch all land, in order, each with its own parent', async () => {
    const ids = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        s.admin.call('Commit', { Namespace: 'admin', Name: 'fast', Branch: '', Message: `c${i}`, Metadata: {} }),
      ),
    );
    const commits = await s.admin.call('Commits', { Namespace: 'admin', Name: 'fast', Branch: '' });
    assert.deepEqual(
      commits
        .slice(-10)
        .map((c) => c.Id)
        .sort(),
      [...ids].sort(),
    );
    assert.equal(new Set(commits.map((c) => c.Id)).size, commits.length);
    assert.equal(commits.length, 12);
  });
});
