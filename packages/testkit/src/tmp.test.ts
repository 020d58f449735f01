import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { Cleanup } from './cleanup.ts';
import { isTestDirName, makeTempDir, TEST_NAME_PREFIX, testRoot } from './tmp.ts';

test('makeTempDir: a fresh prefixed directory under the test root, removed by cleanup', async () => {
  const c = new Cleanup();
  const a = await makeTempDir('pool', c);
  const b = await makeTempDir('pool', c);
  assert.notEqual(a, b);
  assert.ok(statSync(a).isDirectory());
  assert.match(basename(a), /^dmtest-pool-\w{6}$/);
  assert.equal(dirname(a), testRoot());
  await writeFile(join(a, 'file'), 'data');
  await c.run();
  assert.equal(existsSync(a), false);
  assert.equal(existsSync(b), false);
});

test('makeTempDir: refuses prefixes that are paths', async () => {
  await assert.rejects(makeTempDir('../escape'), /plain name/);
});

test('testRoot: DOTMESH_TEST_ROOT wins and is created; otherwise the OS temp dir', () => {
  const base = mkdtempSync(join(testRoot(), TEST_NAME_PREFIX));
  try {
    const root = join(base, 'run-1');
    assert.equal(testRoot({ DOTMESH_TEST_ROOT: root }), root);
    assert.ok(statSync(root).isDirectory());
    assert.equal(testRoot({}), tmpdir());
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('isTestDirName: the names mkdtemp gives test folders, never a run root or a user folder', async () => {
  const c = new Cleanup();
  try {
    for (const prefix of ['', 'pool', 'home-defaults-']) assert.ok(isTestDirName(basename(await makeTempDir(prefix, c))), prefix);
  } finally {
    await c.run();
  }
  for (const name of ['dm-inproc-OoUljX', 'dm-tls-given-a1B2c3', 'dotmesh-store-Zz9yY8']) assert.ok(isTestDirName(name), name);
  for (const name of [
    'dmtest-wt-tests',
    'dmtest-8943',
    'dmtest-run.123456',
    'dotmesh-demo',
    'dm-inproc-',
    'dmtest-pool-abc',
    'xdmtest-pool-abcdef',
  ])
    assert.equal(isTestDirName(name), false, name);
});
