import assert from 'node:assert/strict';
import { DotmeshError } from '@dotmesh/core';

/** Asserts that `f` throws a DotmeshError of `code` whose message matches `message` and that carries a hint. */
export function assertRefused(f: () => unknown, code: string, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof DotmeshError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    assert.ok(e.hint, `a hint for ${e.message}`);
    return true;
  });
}
