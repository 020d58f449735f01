import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDotmeshError } from './errors.ts';
import { formatVolumeName, parseVolumeName } from './volume-name.ts';

function refusal(input: unknown): string {
  try {
    parseVolumeName(input);
  } catch (e) {
    assert.ok(isDotmeshError(e), `not a DotmeshError: ${String(e)}`);
    assert.equal(e.code, 'INVALID_NAME');
    return e.message;
  }
  assert.fail(`${String(input)} was accepted`);
}

describe('parseVolumeName', () => {
  it('reads [ns/]dot[@branch][.subdot]', () => {
    assert.deepEqual(parseVolumeName('apples'), {
      namespace: 'admin',
      dot: 'apples',
      pinnedBranch: undefined,
      subdot: '__default__',
    });
    assert.deepEqual(parseVolumeName('alice/apples@green.seeds'), {
      namespace: 'alice',
      dot: 'apples',
      pinnedBranch: 'green',
      subdot: 'seeds',
    });
    assert.deepEqual(parseVolumeName('apples.__root__').subdot, '__root__');
    assert.equal(parseVolumeName('apples@master').pinnedBranch, undefined);
  });

  it('formats the canonical spelling', () => {
    assert.equal(formatVolumeName(parseVolumeName('admin/apples@master.__default__')), 'apples');
    assert.equal(formatVolumeName(parseVolumeName('bob/apples@b1.x')), 'bob/apples@b1.x');
  });

  it("refuses bad names with the original's texts", () => {
    assert.equal(refusal('a.b.c'), "Volume names must be of the form [NAMESPACE/]DOT[.SUBDOT]: 'a.b.c'");
    assert.equal(refusal('a/b/c'), "Volume names must be of the form NAMESPACE/VOLUME or just VOLUME: 'a/b/c'");
    assert.equal(refusal('a.b$c'), "Subdot names must not contain $, :, /, ., or @: 'a.b$c'");
    assert.equal(refusal('a.b@c'), "Subdot names must not contain $, :, /, ., or @: 'a.b@c'");
    assert.match(refusal(''), /cannot be empty/);
    assert.match(refusal(42), /cannot be empty/);
    assert.match(refusal('a@'), /branch cannot be empty/);
    assert.match(refusal('a@b@c'), /invalid branch name/);
    assert.match(refusal('../../etc'), /Volume names must be|invalid/);
    assert.match(refusal('x'.repeat(65)), /invalid dot name/);
    assert.match(refusal('a\u0000b'), /invalid dot name/);
    assert.match(refusal('/abs'), /namespace cannot be empty/);
  });
});
