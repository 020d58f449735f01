import assert from 'node:assert/strict';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, makeTempDir, skipUnless } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

/** `dm diff` with the built dm against a cluster made by `dm cluster init`, on btrfs. */
const skip = skipUnless(['root', 'btrfs', 'losetup']);

describe('dm diff', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let data = '';
  before(async () => {
    c = await initCluster(cleanup);
    const mnt = await makeTempDir('mnt-', cleanup);
    await c.ok(['init', 'diffy']);
    data = join(mnt, 'diffy');
    await c.ok(['mount', 'diffy', data]);
  });
  after(async () => cleanup.run());

  test('working copy vs HEAD, vs a commit, and between two commits; --json', async () => {
    assert.equal(await c.ok(['diff']), '', 'nothing changed in a new dot');
    await writeFile(join(data, 'a.txt'), 'one');
    await writeFile(join(data, 'b.txt'), 'bee');
    assert.equal(await c.ok(['diff']), '+\t__default__/a.txt\n+\t__default__/b.txt\n');
    await c.ok(['commit', '-m', 'first']);
    assert.equal(await c.ok(['diff']), '');
    await writeFile(join(data, 'a.txt'), 'two!');
    await rename(join(data, 'b.txt'), join(data, 'c.txt'));
    assert.equal(await c.ok(['diff']), 'M\t__default__/a.txt\nR\t__default__/b.txt -> __default__/c.txt\n');
    await c.ok(['commit', '-m', 'second']);
    await rm(join(data, 'a.txt'));
    assert.equal(await c.ok(['diff']), '-\t__default__/a.txt\n');
    assert.equal(
      await c.ok(['diff', 'HEAD^']),
      '-\t__default__/a.txt\nR\t__default__/b.txt -> __default__/c.txt\n',
      'the working copy against the commit before HEAD',
    );
    const between = JSON.parse(await c.ok(['diff', '--json', 'HEAD^^', 'HEAD'])) as {
      from: string;
      to: string;
      changes: unknown[];
    };
    const log = await c.ok(['log']);
    assert.ok(log.includes(`commit ${between.from}\n`) && log.includes(`commit ${between.to}\n`));
    assert.deepEqual(between.changes, [
      { change: '+', filename: '__default__/a.txt' },
      { change: '+', filename: '__default__/c.txt' },
    ]);
    assert.equal(await readFile(join(data, 'c.txt'), 'utf8'), 'bee', 'diff changed nothing');
  });

  test('bad refs and arguments fail with a clear message and exit code', async () => {
    const missing = await c.dm(['diff', 'no-such-commit']);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /No commit "no-such-commit" in admin\/diffy/);
    const tooFar = await c.dm(['diff', 'HEAD^^^^^^^^']);
    assert.equal(tooFar.code, 3);
    assert.match(tooFar.stderr, /Commits don't go back that far/);
    const many = await c.dm(['diff', 'HEAD', 'HEAD', 'HEAD']);
    assert.equal(many.code, 2);
    assert.match(many.stderr, /at most two commits/);
  });
});
