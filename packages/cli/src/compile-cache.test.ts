import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileCacheDir } from './compile-cache.ts';

test('compileCacheDir: XDG_CACHE_HOME, else ~/.cache; none without an absolute one, or when disabled', () => {
  assert.equal(compileCacheDir({ HOME: '/home/u' }), '/home/u/.cache/dotmesh/node-compile-cache');
  assert.equal(compileCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: '/c' }), '/c/dotmesh/node-compile-cache');
  assert.equal(compileCacheDir({ HOME: '/home/u', XDG_CACHE_HOME: 'relative' }), '/home/u/.cache/dotmesh/node-compile-cache');
  assert.equal(compileCacheDir({}), undefined);
  assert.equal(compileCacheDir({ HOME: '' }), undefined);
  assert.equal(compileCacheDir({ HOME: '/home/u', NODE_DISABLE_COMPILE_CACHE: '1' }), undefined);
});
