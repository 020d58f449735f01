import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from './errors.ts';
import { NAME_PATTERN } from './names.ts';
import { divergedBranchName, MAX_DIVERGED_IDS, planTransfer } from './transfer-plan.ts';

const base = { senderName: 'admin/foo', receiverName: 'origin:bob/foo' };

function refused(fn: () => unknown): DotmeshError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DotmeshError);
    return e;
  }
  assert.fail('expected a refusal');
}

test('plan: new receiver gets everything; equal histories do nothing; behind receiver gets the rest', () => {
  assert.deepEqual(planTransfer({ ...base, sender: ['a', 'b'], receiver: null, stashOnDivergence: false }), {
    kind: 'send',
    from: null,
    commits: ['a', 'b'],
  });
  assert.deepEqual(planTransfer({ ...base, sender: ['a', 'b'], receiver: ['a', 'b'], stashOnDivergence: false }), {
    kind: 'up-to-date',
  });
  assert.deepEqual(planTransfer({ ...base, sender: ['a', 'b', 'c'], receiver: ['a'], stashOnDivergence: false }), {
    kind: 'send',
    from: 'a',
    commits: ['b', 'c'],
  });
});

test('plan: divergence is refused with its data, or stashed and completed', () => {
  const e = refused(() => planTransfer({ ...base, sender: ['a', 'b'], receiver: ['a', 'x', 'y'], stashOnDivergence: false }));
  assert.equal(e.code, 'DIVERGED');
  assert.match(e.message, /diverged after commit a: admin\/foo has b, origin:bob\/foo has x, y/);
  assert.deepEqual(e.data, {
    common: 'a',
    sender: 'admin/foo',
    receiver: 'origin:bob/foo',
    senderExtra: ['b'],
    receiverExtra: ['x', 'y'],
    senderExtraCount: 1,
    receiverExtraCount: 2,
  });
  assert.deepEqual(planTransfer({ ...base, sender: ['a', 'b'], receiver: ['a', 'x', 'y'], stashOnDivergence: true }), {
    kind: 'stash-then-send',
    from: 'a',
    stash: ['x', 'y'],
    commits: ['b'],
  });
});

test('plan: a long divergence carries the first ids of each side and the exact counts', () => {
  const ids = (p: string, n: number) => Array.from({ length: n }, (_, k) => `${p}${k}`);
  const e = refused(() =>
    planTransfer({ ...base, sender: ['a', ...ids('s', 1500)], receiver: ['a', ...ids('r', 3)], stashOnDivergence: false }),
  );
  const data = e.data ?? {};
  assert.deepEqual(data.senderExtra, ids('s', MAX_DIVERGED_IDS));
  assert.equal(data.senderExtraCount, 1500);
  assert.deepEqual(data.receiverExtra, ['r0', 'r1', 'r2']);
  assert.equal(data.receiverExtraCount, 3);
});

test('plan: no common commit at all (original bug #600) and a receiver ahead are handled, never wedged', () => {
  const none = refused(() => planTransfer({ ...base, sender: ['p'], receiver: ['q'], stashOnDivergence: false }));
  assert.match(none.message, /no common commit/);
  assert.deepEqual(planTransfer({ ...base, sender: ['p'], receiver: ['q'], stashOnDivergence: true }), {
    kind: 'stash-then-send',
    from: null,
    stash: ['q'],
    commits: ['p'],
  });
  assert.deepEqual(none.data?.common, null);
  const ahead = refused(() => planTransfer({ ...base, sender: ['a'], receiver: ['a', 'z'], stashOnDivergence: false }));
  assert.equal(ahead.code, 'DIVERGED');
  assert.match(ahead.message, /is ahead/);
  assert.deepEqual([ahead.data?.common, ahead.data?.senderExtra, ahead.data?.receiverExtra], ['a', [], ['z']]);
  assert.deepEqual(planTransfer({ ...base, sender: ['a'], receiver: ['a', 'z'], stashOnDivergence: true }), {
    kind: 'stash-then-send',
    from: 'a',
    stash: ['z'],
    commits: [],
  });
  assert.equal(
    refused(() => planTransfer({ ...base, sender: [], receiver: null, stashOnDivergence: true })).code,
    'COMMIT_NOT_FOUND',
  );
});

test('plan: every stash keeps every commit of both sides', () => {
  const ids = ['a', 'b', 'c', 'd'];
  for (let i = 0; i < 200; i++) {
    const shared = ids.slice(0, i % 3);
    const sender = [...shared, ...ids.slice(0, (i % 4) + 1).map((x) => `s${x}${i}`)];
    const receiver = [...shared, ...ids.slice(0, i % 5).map((x) => `r${x}${i}`)];
    const plan = planTransfer({ ...base, sender, receiver, stashOnDivergence: true });
    const kept = new Set<string>(receiver);
    if (plan.kind !== 'up-to-date') for (const c of plan.commits) kept.add(c);
    for (const c of [...sender, ...receiver]) assert.ok(kept.has(c), `commit ${c} is kept in case ${i}`);
  }
});

test('diverged branch names follow the original and are valid branch names', () => {
  const name = divergedBranchName('master', new Date('2026-11-25T20:35:07.123Z'));
  assert.equal(name, 'master-DIVERGED-2026-11-25T20-35-07Z');
  assert.match(name, NAME_PATTERN);
  const long = divergedBranchName('b'.repeat(64), new Date('2026-11-25T20:35:07Z'));
  assert.equal(long.length, 64);
  assert.match(long, NAME_PATTERN);
});
