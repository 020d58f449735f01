import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DotmeshError } from './errors.ts';
import { compareHistories } from './history.ts';
import { validateCommitMetadata } from './metadata.ts';
import { normalizeBranch, parseDotName, validateName } from './names.ts';
import { isHeadRef, parseCommitRef, resolveCommitRef } from './refs.ts';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DotmeshError, `expected DotmeshError, got ${String(e)}`);
    return `${e.code}: ${e.message}`;
  }
  assert.fail('expected an error');
}

test('names: valid names pass, hostile names are refused with the pattern in the message', () => {
  assert.equal(validateName('dot', 'my-dot_1'), 'my-dot_1');
  for (const bad of ['../x', '/', 'a/b', 'a\0b', 'x'.repeat(65), 'é', 'a.b', ' a']) {
    assert.match(
      code(() => validateName('dot', bad)),
      /^INVALID_NAME: invalid dot name .*should match pattern/,
    );
  }
  assert.equal(
    code(() => validateName('dot', '')),
    'INVALID_NAME: name cannot be empty',
  );
  assert.equal(
    code(() => validateName('namespace', '')),
    'INVALID_NAME: namespace cannot be empty',
  );
  assert.match(
    code(() => validateName('dot', 'x'.repeat(10_000))),
    /10000 characters/,
  );
  assert.match(
    code(() => validateName('dot', 42)),
    /must be a string/,
  );
});

test('names: [ns/]dot parsing follows the original client', () => {
  assert.deepEqual(parseDotName('foo'), { namespace: 'admin', name: 'foo' });
  assert.deepEqual(parseDotName('ns2/bar'), { namespace: 'ns2', name: 'bar' });
  assert.deepEqual(parseDotName('bar', 'bob'), { namespace: 'bob', name: 'bar' });
  assert.equal(
    code(() => parseDotName('a/b/c')),
    "INVALID_NAME: Volume names must be of the form NAMESPACE/VOLUME or just VOLUME: 'a/b/c'",
  );
  assert.equal(normalizeBranch(''), 'master');
  assert.equal(normalizeBranch('master'), 'master');
  assert.equal(normalizeBranch('b1'), 'b1');
});

test('metadata: lowercase keys only, #commit-id split off and validated', () => {
  assert.deepEqual(validateCommitMetadata({ apples: 'green', empty: '' }), { metadata: { apples: 'green', empty: '' } });
  assert.equal(
    code(() => validateCommitMetadata({ Apples: 'x' })),
    'INVALID_METADATA: Metadata field names must start with lowercase characters: Apples',
  );
  assert.match(
    code(() => validateCommitMetadata({ '1x': 'x' })),
    /must start with lowercase/,
  );
  assert.deepEqual(validateCommitMetadata({ '#commit-id': 'abc', k: 'v' }), { metadata: { k: 'v' }, commitIdOverride: 'abc' });
  assert.match(
    code(() => validateCommitMetadata({ '#commit-id': '../x' })),
    /invalid commit id/,
  );
  assert.match(
    code(() => validateCommitMetadata({ k: 5 })),
    /must be a string/,
  );
  assert.match(
    code(() => validateCommitMetadata([])),
    /must be an object/,
  );
  assert.deepEqual(validateCommitMetadata({ big: 'x'.repeat(2000) }).metadata.big?.length, 2000);
});

test('refs: HEAD^ walks back from the newest commit', () => {
  const ids = ['a', 'b', 'c'];
  assert.equal(resolveCommitRef('HEAD', ids), 'c');
  assert.equal(resolveCommitRef('HEAD^', ids), 'b');
  assert.equal(resolveCommitRef('HEAD^^', ids), 'a');
  assert.equal(resolveCommitRef('b', ids), 'b');
  assert.equal(
    code(() => resolveCommitRef('HEAD^^^', ids)),
    "COMMIT_NOT_FOUND: Commits don't go back that far",
  );
  assert.equal(
    code(() => resolveCommitRef('zzz', ids)),
    'COMMIT_NOT_FOUND: No commits match',
  );
});

test('refs: HEAD~N, ^0, ^1 and suffixes after a commit id, as git spells them', () => {
  const ids = ['a', 'b', 'c', 'd'];
  assert.equal(resolveCommitRef('HEAD~0', ids), 'd');
  assert.equal(resolveCommitRef('HEAD~', ids), 'c');
  assert.equal(resolveCommitRef('HEAD~2', ids), 'b');
  assert.equal(resolveCommitRef('HEAD~1^', ids), 'b');
  assert.equal(resolveCommitRef('HEAD^1^0~1', ids), 'b');
  assert.equal(resolveCommitRef('c~2', ids), 'a');
  assert.equal(resolveCommitRef('c^', ids), 'b');
  assert.deepEqual(parseCommitRef('feature~3'), { base: 'feature', back: 3 });
  assert.deepEqual(parseCommitRef('HEAD'), { base: 'HEAD', back: 0 });
  assert.equal(isHeadRef('HEAD~2'), true);
  assert.equal(isHeadRef('HEADS'), false);
  assert.equal(
    code(() => resolveCommitRef('HEAD~4', ids)),
    "COMMIT_NOT_FOUND: Commits don't go back that far",
  );
  assert.equal(
    code(() => resolveCommitRef('zzz~1', ids)),
    'COMMIT_NOT_FOUND: No commits match',
  );
  assert.match(
    code(() => resolveCommitRef('HEAD^2', ids)),
    /^COMMIT_NOT_FOUND: HEAD\^2: commits have one parent/,
  );
  for (const bad of ['HEAD~x', '~1', 'HEAD^^-', 'HEAD~1~a']) {
    assert.match(
      code(() => parseCommitRef(bad)),
      /^INVALID_ARGUMENT: .* is not a commit reference$/,
      bad,
    );
  }
});

test('history: fast-forward relations and divergence carry their data', () => {
  assert.deepEqual(compareHistories(['a', 'b'], ['a', 'b']), { kind: 'equal' });
  assert.deepEqual(compareHistories(['a', 'b', 'c'], ['a']), { kind: 'ahead', common: 'a', extra: ['b', 'c'] });
  assert.deepEqual(compareHistories(['a'], ['a', 'x']), { kind: 'behind', common: 'a', missing: ['x'] });
  assert.deepEqual(compareHistories(['a', 'b'], ['a', 'x']), { kind: 'diverged', common: 'a', ours: ['b'], theirs: ['x'] });
  assert.deepEqual(compareHistories(['p'], ['q']), { kind: 'diverged', common: null, ours: ['p'], theirs: ['q'] });
});
