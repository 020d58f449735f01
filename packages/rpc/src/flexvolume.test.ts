import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkMountRequest, checkUnmountRequest } from './flexvolume.ts';

test('the server checks the FlexVolume requests it gets: names, subdot, target, read-only flag', () => {
  assert.deepEqual(checkMountRequest({ Namespace: 'admin', Name: 'a@master', Subdot: '', Target: '/t/x', ReadOnly: true }), {
    Namespace: 'admin',
    Name: 'a',
    Subdot: '__default__',
    Target: '/t/x',
    ReadOnly: true,
  });
  const bad: [unknown, RegExp][] = [
    [null, /JSON object/],
    [{ Namespace: 'a/b', Name: 'x', Subdot: '', Target: '/t' }, /invalid namespace name/],
    [{ Namespace: 'admin', Name: 'x@a/b', Subdot: '', Target: '/t' }, /invalid branch name/],
    [{ Namespace: 'admin', Name: 'x', Subdot: '../y', Target: '/t' }, /invalid subdot name/],
    [{ Namespace: 'admin', Name: 'x', Subdot: '', Target: '/t/../etc' }, /not a clean absolute path/],
    [{ Namespace: 'admin', Name: 'x', Subdot: '', Target: '/t', ReadOnly: 'yes' }, /ReadOnly must be true or false/],
  ];
  for (const [request, message] of bad) assert.throws(() => checkMountRequest(request), message);
  assert.deepEqual(checkUnmountRequest({ Target: '/t' }), { Target: '/t' });
  assert.throws(() => checkUnmountRequest({ Target: '' }), /must be a path/);
});
