import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MemoryDriver } from '@dotmesh/storage';
import { Cleanup } from '@dotmesh/testkit';
import { KEYS } from '../src/cluster/store-keys.ts';
import { LABEL_KIND, LABEL_VERSION } from '../src/dots/labels.ts';
import { startInProcess } from './in-process.ts';
import { inProcessStoreKinds } from './store-kinds.ts';

/**
 * Issue 13's bound: a dot of 10,000 commits on an etcd run with its defaults (its 1.5 MiB
 * request limit included). The pool holds the history (made in the driver, as a host that
 * served the dot for years would have it); the server publishes it at start, takes a commit,
 * lists it and publishes it again at a restart. Each commit is one small key of this node's, so
 * no value grows with the history and etcd refuses no request.
 */
const COMMITS = 10_000;
const NODE = 'feedfacecafe0001';
const DOT = '00000000-0000-4000-8000-000000010000';
const NOW = '2026-01-01T00:00:00.000Z';

describe(`a dot of ${COMMITS} commits on an etcd with its default limits`, () => {
  const cleanup = new Cleanup();
  const etcd = inProcessStoreKinds(cleanup, 'long-history').etcd;
  after(() => cleanup.run());

  test('start-up publishes one small key per commit; a commit, Commits and a restart work', { skip: etcd.skip }, async () => {
    const driver = new MemoryDriver({ poolId: NODE });
    await driver.createVolume(DOT, {
      kind: LABEL_KIND,
      version: LABEL_VERSION,
      fsId: DOT,
      dotId: DOT,
      branch: 'master',
      origin: null,
      createdAt: NOW,
      hiddenCommits: [],
      dot: {
        namespace: 'admin',
        name: 'long',
        ownerId: '00000000-0000-0000-0000-000000000000',
        collaboratorIds: [],
        createdAt: NOW,
      },
    });
    let parent: { fsId: string; commitId: string } | null = null;
    for (let i = 0; i < COMMITS; i++) {
      const commitId = `c${String(i).padStart(5, '0')}`;
      await driver.commit(DOT, commitId, {
        metadata: { message: `commit ${i}`, author: 'admin', timestamp: String(i + 1) },
        parent,
      });
      parent = { fsId: DOT, commitId };
    }
    const store = await etcd.open();
    let s = await startInProcess({ driver, store, keepStoreOpen: true });
    cleanup.add(() => s.close(), 'stop the server');
    const check = async (when: string, commits: number) => {
      const held = (await store.range(KEYS.commitsOf(NODE, DOT))).kvs;
      assert.equal(held.length, commits, `${when}: one key per commit`);
      const largest = Math.max(...(await store.range('dotmesh.io/')).kvs.map((kv) => Buffer.byteLength(kv.value)));
      assert.ok(largest < 2048, `${when}: the largest value is ${largest} bytes`);
      const listed = await s.admin.call('Commits', { Namespace: 'admin', Name: 'long', Branch: '' });
      assert.equal(listed.length, commits, `${when}: Commits lists every commit`);
      const state = JSON.parse((await store.get(KEYS.state(NODE, DOT)))!.value) as { commitCount: number };
      assert.equal(state.commitCount, commits);
    };
    await check('after the start', COMMITS);
    await s.admin.call('Commit', { Namespace: 'admin', Name: 'long', Branch: '', Message: 'one more', Metadata: {} });
    await check('after a commit', COMMITS + 1);
    s = await s.restart();
    await check('after a restart', COMMITS + 1);
  });
});
