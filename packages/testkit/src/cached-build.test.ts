import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensureCachedFile, holdCachedFile } from './cached-build.ts';
import { Cleanup } from './cleanup.ts';
import { acquireFlock } from './flock.ts';
import { makeTempDir } from './tmp.ts';

test('a new build removes the versions it supersedes, except one a builder holds, ones users hold and other images', async () => {
  const cleanup = new Cleanup();
  try {
    const dir = await makeTempDir('cache', cleanup);
    const old = join(dir, 'k8s-server-aaaaaaaaaaaa.tar');
    const held = join(dir, 'k8s-server-cccccccccccc.tar');
    const used = join(dir, 'k8s-server-eeeeeeeeeeee.tar');
    const other = join(dir, 'k8s-server-base-bbbbbbbbbbbb.tar');
    for (const f of [old, held, used, other]) await writeFile(f, 'old');
    // Two users hold it at once (shared locks).
    await holdCachedFile(used, cleanup);
    await holdCachedFile(used, cleanup);
    await writeFile(`${old}.lock`, '');
    const release = await acquireFlock(`${held}.lock`, 5000);
    cleanup.add(release);
    const target = join(dir, 'k8s-server-dddddddddddd.tar');
    const made = await ensureCachedFile({
      target,
      timeoutMs: 10_000,
      supersedes: (name) => /^k8s-server-[0-9a-f]{12}\.tar$/.test(name),
      build: async (work) => {
        const out = join(work, 'out.tar');
        await writeFile(out, 'new');
        return out;
      },
    });
    assert.equal(made, target);
    assert.equal(await readFile(target, 'utf8'), 'new');
    assert.equal(existsSync(old), false, 'the superseded version is gone');
    assert.equal(existsSync(`${old}.lock`), false, 'with its lock file');
    assert.equal(existsSync(held), true, 'a version whose lock is held stays');
    assert.equal(existsSync(used), true, 'a version in use stays');
    assert.equal(existsSync(other), true, 'another image stays');
  } finally {
    await cleanup.run();
  }
});
