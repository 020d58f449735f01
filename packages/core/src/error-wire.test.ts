import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorFromObject, errorObject, INTERNAL_ERROR_HINT } from './error-wire.ts';
import { DotmeshError } from './errors.ts';

test('a DotmeshError survives JSON: code, message, hint and data', () => {
  const e = new DotmeshError('DIVERGED', 'they diverged', { hint: 'stash', data: { common: null, senderExtra: ['a'] } });
  const back = errorFromObject(JSON.parse(JSON.stringify(errorObject(e))));
  assert.deepEqual([back.code, back.message, back.hint, back.data], [e.code, e.message, e.hint, e.data]);
  const bare = errorObject(new DotmeshError('IN_USE', 'busy'));
  assert.deepEqual(bare, { code: 'IN_USE', message: 'busy', hint: null, data: null });
  const rebuilt = errorFromObject(bare);
  assert.deepEqual([rebuilt.hint, rebuilt.data], [undefined, undefined]);
});

test('anything else is INTERNAL, pointing at the log', () => {
  assert.deepEqual(errorObject(new TypeError('x is undefined')), {
    code: 'INTERNAL',
    message: 'internal error: x is undefined',
    hint: INTERNAL_ERROR_HINT,
    data: null,
  });
});

test('unknown codes degrade to INTERNAL keeping the code; junk is tolerated', () => {
  const e = errorFromObject({ code: 'FROM_THE_FUTURE', message: 'm', hint: 'h', data: { a: 1 } }, { prefix: 'peer x: ' });
  assert.deepEqual([e.code, e.message, e.hint, e.data], ['INTERNAL', 'peer x: m', 'h', { a: 1, unknownCode: 'FROM_THE_FUTURE' }]);
  const junk = errorFromObject('nonsense', { fallbackMessage: 'it failed' });
  assert.deepEqual([junk.code, junk.message, junk.hint, junk.data], ['INTERNAL', 'it failed', undefined, undefined]);
  const arrayData = errorFromObject({ code: 'CONFLICT', message: 'm', data: [1, 2] });
  assert.equal(arrayData.data, undefined);
});

test('passing an error on keeps a code this version does not know', () => {
  for (const sent of [
    { code: 'FROM_THE_FUTURE', message: 'm', hint: 'h', data: { a: 1 } },
    { code: 'FROM_THE_FUTURE', message: 'm', hint: null, data: null },
  ]) {
    assert.deepEqual(errorObject(errorFromObject(sent)), sent);
  }
});
