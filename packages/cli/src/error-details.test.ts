import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { errorDetailLines } from './error-details.ts';

test('a divergence shows the common commit and each side’s commits, the first ten of a long list', () => {
  const ids = Array.from({ length: 12 }, (_, k) => `s${k}`);
  const e = new DotmeshError('DIVERGED', 'm', {
    data: {
      common: null,
      sender: 'A',
      receiver: 'B',
      senderExtra: ids,
      receiverExtra: [],
      senderExtraCount: 1500,
      receiverExtraCount: 0,
    },
  });
  assert.deepEqual(errorDetailLines(e), [
    'common commit: none',
    `only on A: ${ids.slice(0, 10).join(', ')} and 1490 more`,
    'only on B: no commits',
  ]);
});

test('other errors and other data have no detail lines', () => {
  assert.deepEqual(errorDetailLines(new DotmeshError('DIVERGED', 'm', { data: { branch: 'b', senderFsId: 'x' } })), []);
  assert.deepEqual(errorDetailLines(new DotmeshError('CONFLICT', 'm', { data: { common: 'c' } })), []);
  assert.deepEqual(errorDetailLines(new DotmeshError('DIVERGED', 'm')), []);
});
