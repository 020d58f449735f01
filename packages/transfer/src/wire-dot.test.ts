import assert from 'node:assert/strict';
import { test } from 'node:test';
import { holds, type WireDot, wireHistory } from './wire-dot.ts';

const DOT = 'd'.repeat(8);
const BRANCH = 'b'.repeat(8);

/** master: m1 m2 (m2 hidden, e.g. rolled back); branch dev from m1: d1. */
const dot: WireDot = {
  id: DOT,
  namespace: 'admin',
  name: 'web',
  volumes: [
    {
      fsId: DOT,
      branch: 'master',
      origin: null,
      commits: [
        { id: 'm1', parent: null, metadata: { message: 'one' } },
        { id: 'm2', parent: { fsId: DOT, commitId: 'm1' }, metadata: { message: 'two' } },
      ],
      hidden: ['m2'],
      dirtyBytes: 0,
      containers: [],
    },
    {
      fsId: BRANCH,
      branch: 'dev',
      origin: { fsId: DOT, commitId: 'm1' },
      commits: [{ id: 'd1', parent: { fsId: DOT, commitId: 'm1' }, metadata: { message: 'dev' } }],
      hidden: [],
      dirtyBytes: 0,
      containers: [],
    },
  ],
};

test('wireHistory: a branch history oldest first, across volumes, hidden commits left out of the head', () => {
  assert.deepEqual(
    wireHistory(dot, BRANCH).map((h) => [h.fsId, h.id, h.metadata.message]),
    [
      [DOT, 'm1', 'one'],
      [BRANCH, 'd1', 'dev'],
    ],
  );
  assert.deepEqual(
    wireHistory(dot, DOT).map((h) => h.id),
    ['m1'],
  );
  assert.deepEqual(wireHistory(dot, 'n'.repeat(8)), []);
});

test('holds: hidden commits count as held', () => {
  assert.equal(holds(dot, DOT, 'm2'), true);
  assert.equal(holds(dot, BRANCH, 'm1'), false);
  assert.equal(holds(null, DOT, 'm1'), false);
});
