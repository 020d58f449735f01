import assert from 'node:assert/strict';
import { test } from 'node:test';
import { branchHead, historyFrom } from './branch-history.ts';
import type { CommitOrigin } from './types.ts';

interface C {
  readonly id: string;
  readonly parent: CommitOrigin | null;
}

/** master: a1 a2 a3; branch b from a2: b1 b2. */
const commits = new Map<string, C[]>([
  [
    'master',
    [
      { id: 'a1', parent: null },
      { id: 'a2', parent: { fsId: 'master', commitId: 'a1' } },
      { id: 'a3', parent: { fsId: 'master', commitId: 'a2' } },
    ],
  ],
  [
    'b',
    [
      { id: 'b1', parent: { fsId: 'master', commitId: 'a2' } },
      { id: 'b2', parent: { fsId: 'b', commitId: 'b1' } },
    ],
  ],
]);
const find = (ref: CommitOrigin) => commits.get(ref.fsId)?.find((c) => c.id === ref.commitId);
const ids = (h: ReadonlyArray<CommitOrigin>) => h.map((x) => `${x.fsId}@${x.commitId}`);

test('branchHead: the newest own commit not hidden, else the origin', () => {
  const own = commits.get('b')!;
  const origin = { fsId: 'master', commitId: 'a2' };
  assert.deepEqual(branchHead('b', own, [], origin), { fsId: 'b', commitId: 'b2' });
  assert.deepEqual(branchHead('b', own, ['b2'], origin), { fsId: 'b', commitId: 'b1' });
  assert.deepEqual(branchHead('b', own, ['b1', 'b2'], origin), origin);
  assert.equal(branchHead('master', [], [], null), null);
});

test('historyFrom: oldest first, across branches through parent links', () => {
  assert.deepEqual(ids(historyFrom({ fsId: 'b', commitId: 'b2' }, find, (c) => c.parent)), [
    'master@a1',
    'master@a2',
    'b@b1',
    'b@b2',
  ]);
  assert.deepEqual(ids(historyFrom({ fsId: 'master', commitId: 'a3' }, find, (c) => c.parent)), [
    'master@a1',
    'master@a2',
    'master@a3',
  ]);
  assert.deepEqual(
    historyFrom(null, find, (c) => c.parent),
    [],
  );
});

test('historyFrom: stops at a missing commit and at a loop', () => {
  const missing = (ref: CommitOrigin) => (ref.commitId === 'a1' ? undefined : find(ref));
  assert.deepEqual(ids(historyFrom({ fsId: 'b', commitId: 'b2' }, missing, (c) => c.parent)), ['master@a2', 'b@b1', 'b@b2']);
  const loop: C = { id: 'x', parent: { fsId: 'l', commitId: 'y' } };
  const loop2: C = { id: 'y', parent: { fsId: 'l', commitId: 'x' } };
  const inLoop = (ref: CommitOrigin) => (ref.commitId === 'x' ? loop : ref.commitId === 'y' ? loop2 : undefined);
  assert.deepEqual(ids(historyFrom({ fsId: 'l', commitId: 'x' }, inLoop, (c) => c.parent)), ['l@y', 'l@x']);
});
