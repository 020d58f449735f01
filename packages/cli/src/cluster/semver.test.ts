import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { compareServerVersions, parseServerVersion } from './semver.ts';

const cmp = (a: string, b: string) => Math.sign(compareServerVersions({ text: a, what: 'a' }, { text: b, what: 'b' }));

test('semver precedence (semver.org §11), v prefix and build metadata', () => {
  const ordered = [
    '0.1.0',
    '0.1.1',
    '0.2.0-alpha',
    '0.2.0-alpha.1',
    '0.2.0-alpha.beta',
    '0.2.0-beta.2',
    '0.2.0-beta.11',
    '0.2.0-rc.1',
    '0.2.0',
    '1.0.0',
    '10.0.0',
  ];
  for (let i = 0; i + 1 < ordered.length; i++) {
    assert.equal(cmp(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    assert.equal(cmp(ordered[i + 1]!, ordered[i]!), 1, `${ordered[i + 1]} > ${ordered[i]}`);
  }
  assert.equal(cmp('v1.2.3', '1.2.3+build.5'), 0);
  assert.equal(cmp('1.2.3\n', '1.2.3'), 0);
  assert.equal(parseServerVersion('v0.2.0-rc.1+build.7\n', 'x'), '0.2.0-rc.1');
});

test('not a version: INVALID_ARGUMENT naming who reported it', () => {
  for (const bad of ['', '1.2', '01.2.3', 'dotmesh 1.2.3', '1.2.3-']) {
    assert.throws(
      () => parseServerVersion(bad, 'the new dotmesh-server'),
      (e: unknown) =>
        isDotmeshError(e) && e.code === 'INVALID_ARGUMENT' && e.message.startsWith('the new dotmesh-server reports'),
    );
  }
});
