import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, makeTempDir, skipUnless } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

/**
 * R4 for the CLI: every command fed missing, wrong, oversized and hostile arguments exits
 * non-zero with one clear `error:` line (never a stack trace), writes nothing outside the pool,
 * and the server keeps serving.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);
const HOSTILE = ['../x', '/', '..', 'a/b/c', 'x'.repeat(10_000), '', ' ', 'HEAD^', '$(touch pwned)', 'a@b', 'é'];

describe('dm with bad input (R4)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let cwd: string;
  before(async () => {
    c = await initCluster(cleanup);
    await c.ok(['init', 'good']);
    cwd = await makeTempDir('cwd-', cleanup);
  });
  after(async () => cleanup.run());

  const cases: Array<[string, string[][]]> = [
    ['init', [[], ...HOSTILE.map((h) => [h])]],
    ['switch', [[], ...HOSTILE.map((h) => [h])]],
    [
      'commit',
      [
        [],
        ['-m'],
        ['-m', ''],
        ['-m', 'x', '-d', 'noequals'],
        ['-m', 'x', '-d', 'Upper=x'],
        ['-m', 'x', '-d', '#commit-id=../x'],
        ['-m', 'x'.repeat(70_000)],
      ],
    ],
    ['checkout', [[], ...HOSTILE.map((h) => [h]), ...HOSTILE.map((h) => ['-b', h])]],
    ['reset', [[], ...HOSTILE.map((h) => ['--hard', h])]],
    ['dot', [['show', 'a/b/c'], ['show', 'nope'], ['delete', '-f', 'nope'], ['delete', '-f', '../x'], ['frobnicate']]],
    ['mount', [[], ['good'], ['nope', 'somewhere'], ['../x', 'somewhere']]],
    [
      'remote',
      [
        ['add'],
        ['add', 'x'],
        ['add', 'bad', 'no-at-sign'],
        ['add', 'bad', 'u@host:notaport'],
        ['rm', 'nope'],
        ['switch', 'nope'],
      ],
    ],
    ['debug', [[], ['NoSuchMethod'], ['--parse-json', 'Get', '{not json'], ['Get', '"../../etc"']]],
    ['log', [['extra', 'args', 'here']]],
  ];

  for (const [command, argLists] of cases) {
    test(`dm ${command}`, async () => {
      for (const args of argLists) {
        const r = await c.dm([command, ...args], { env: { DOTMESH_PASSWORD: 'irrelevant' } });
        const shown = `dm ${command} ${args.map((a) => a.slice(0, 40)).join(' ')}`;
        assert.notEqual(r.code, 0, `${shown} should fail`);
        assert.match(r.stderr, /^(error: |Error: |Usage: |error: unknown)/m, `${shown}: ${r.stderr.slice(0, 300)}`);
        assert.doesNotMatch(r.stderr, /\n\s+at .*\(.*:\d+:\d+\)/, `${shown} printed a stack trace: ${r.stderr.slice(0, 500)}`);
        assert.ok(r.stderr.length < 4000, `${shown}: a short message`);
      }
      assert.match(await c.ok(['list']), /good/, 'the server keeps serving');
    });
  }

  test('nothing was written outside the pool', async () => {
    assert.deepEqual(await readdir(cwd), []);
    const pool = await readdir(c.poolDir);
    const allowed = ['container_mnt', 'dotmesh-pool.holder', 'dotmesh-pool.lock', 'dotmesh_data', 'mnt', 'server'];
    assert.deepEqual(
      pool.filter((n) => !allowed.includes(n)),
      [],
    );
    const containerMnt = await readdir(join(c.poolDir, 'container_mnt')).catch(() => []);
    assert.ok(
      containerMnt.every((n) => /^[a-zA-Z0-9_-]+$/.test(n)),
      containerMnt.join(','),
    );
  });
});
