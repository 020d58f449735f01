import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DotmeshClient } from '@dotmesh/rpc';
import { Cleanup, type ServerProcess, skipUnless, startServerProcess } from '@dotmesh/testkit';

/**
 * R1, second half: kill -9 the real server at random moments while clients create dots,
 * commit, branch and roll back concurrently; after each restart every commit a client saw
 * acknowledged is still there with its metadata (rollbacks only target dots kept apart for
 * them), and every branch still takes commits.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);
const ROUNDS = Number(process.env.DOTMESH_RANDOM_KILL_ROUNDS ?? 50);

interface Acked {
  dot: string;
  branch: string;
  commitId: string;
  message: string;
}

async function worker(c: DotmeshClient, id: number, acked: Acked[], stop: { done: boolean }): Promise<void> {
  const dot = `load-${id}`;
  let n = 0;
  while (!stop.done) {
    try {
      if ((await c.call('Exists', { Namespace: 'admin', Name: dot, Branch: '' })) === '') {
        await c.call('Create', { Namespace: 'admin', Name: dot });
      }
      const branch = n % 5 === 4 ? `br${n}` : '';
      if (branch !== '') {
        const commits = await c.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' });
        await c.call('Branch', {
          Namespace: 'admin',
          Name: dot,
          SourceBranch: 'master',
          NewBranchName: branch,
          SourceCommitId: commits.at(-1)!.Id,
        });
      }
      const message = `w${id}-${n}`;
      const commitId = await c.call('Commit', {
        Namespace: 'admin',
        Name: dot,
        Branch: branch,
        Message: message,
        Metadata: { n: String(n) },
      });
      acked.push({ dot, branch, commitId, message });
    } catch {
      return; // the server died under us
    }
    n++;
  }
}

async function roller(c: DotmeshClient, stop: { done: boolean }): Promise<void> {
  const dot = 'rolling';
  while (!stop.done) {
    try {
      if ((await c.call('Exists', { Namespace: 'admin', Name: dot, Branch: '' })) === '')
        await c.call('Create', { Namespace: 'admin', Name: dot });
      await c.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: 'r', Metadata: {} });
      const commits = await c.call('Commits', { Namespace: 'admin', Name: dot, Branch: '' });
      await c.call('Rollback', { Namespace: 'admin', Name: dot, Branch: '', SnapshotId: commits[randomInt(commits.length)]!.Id });
      if (randomInt(10) === 0) await c.call('Delete', { Namespace: 'admin', Name: dot });
    } catch {
      return;
    }
  }
}

describe(`random kill -9 under load (${ROUNDS} rounds)`, { skip }, () => {
  const cleanup = new Cleanup();
  let s: ServerProcess;
  before(async () => {
    s = await startServerProcess({ cleanup, poolSize: '2G' });
  });
  after(async () => cleanup.run());

  test('every acknowledged commit survives, nothing is stuck', { timeout: 15 * 60_000 }, async () => {
    const acked: Acked[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const stop = { done: false };
      const load = Promise.all([0, 1, 2].map((i) => worker(s.admin, i, acked, stop)).concat(roller(s.admin, stop)));
      await sleep(50 + randomInt(400));
      await s.kill9();
      stop.done = true;
      await load;
      s = await s.restart();
      for (const a of acked) {
        const commits = await s.admin.call('Commits', { Namespace: 'admin', Name: a.dot, Branch: a.branch });
        const found = commits.find((c) => c.Id === a.commitId);
        assert.ok(found, `round ${round}: acknowledged commit ${a.commitId} of ${a.dot}@${a.branch || 'master'} survived`);
        assert.equal(found.Metadata.message, a.message);
      }
      // Nothing stuck: every branch of every dot still takes a commit.
      const all = await s.admin.call('AllDotsAndBranches', null);
      for (const d of all.Dots) {
        for (const v of [d.MasterBranch, ...(d.OtherBranches ?? [])]) {
          const id = await s.admin.call('Commit', {
            Namespace: v.Name.Namespace,
            Name: v.Name.Name,
            Branch: v.Branch,
            Message: 'probe',
            Metadata: {},
          });
          if (v.Name.Name.startsWith('load-')) acked.push({ dot: v.Name.Name, branch: v.Branch, commitId: id, message: 'probe' });
        }
      }
    }
    assert.ok(acked.length > ROUNDS, `the load made progress (${acked.length} acknowledged commits)`);
  });
});
