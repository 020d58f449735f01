import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Cleanup, makeTempDir } from '../packages/testkit/src/index.ts';
import { collectSkips, formatSkips } from './skip-report.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const reporter = join(import.meta.dirname, 'skip-report.ts');

/** Test files as the suite has them: a gate that skips a whole suite, t.skip(), nesting. */
const FIXTURE = `import { describe, test } from 'node:test';
describe('etcd store', { skip: 'etcd is not installed' }, () => {
  test('never runs', () => {});
  test('never runs either', () => {});
});
describe('outer', () => {
  describe('inner', { skip: 'needs root' }, () => {
    test('also never runs', () => {});
  });
  test('a test that skips itself', (t) => {
    t.skip('/usr/sbin/dockerd is missing');
  });
  test('passes', () => {});
});
test('top-level, skipped without a reason', { skip: true }, () => {});
`;

test('with node --test, the report names every skipped suite and test with its reason, and counts both', async () => {
  const c = new Cleanup();
  try {
    const dir = await makeTempDir('skip-report', c);
    await writeFile(join(dir, 'gated.test.mjs'), FIXTURE);
    const out = join(dir, 'skips.txt');
    const { stdout } = await run(
      process.execPath,
      [
        '--test',
        '--test-reporter=spec',
        '--test-reporter-destination=stdout',
        `--test-reporter=${reporter}`,
        `--test-reporter-destination=${out}`,
        'gated.test.mjs',
      ],
      // A runner started by a test would otherwise report to ours (NODE_TEST_CONTEXT), not print.
      { cwd: dir, env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT')) },
    );
    // Node counts the two skipped tests only.
    assert.match(stdout, /^ℹ skipped 2$/m);
    assert.deepEqual((await readFile(out, 'utf8')).trimEnd().split('\n'), [
      `== test-all: skipped 2 suites and 2 tests (node's "skipped" counts tests only; a skipped suite's tests did not run):`,
      '  ﹣ suite gated.test.mjs › etcd store: etcd is not installed',
      '  ﹣ suite gated.test.mjs › outer › inner: needs root',
      '  ﹣ test  gated.test.mjs › outer › a test that skips itself: /usr/sbin/dockerd is missing',
      '  ﹣ test  gated.test.mjs › top-level, skipped without a reason: (no reason given)',
    ]);
  } finally {
    await c.run();
  }
});

test('collectSkips keeps each file’s suites apart; nothing skipped says so', async () => {
  async function* events() {
    yield { type: 'test:start', data: { name: 'a', nesting: 0, file: '/r/one.test.ts' } };
    yield { type: 'test:start', data: { name: 'b', nesting: 0, file: '/r/two.test.ts' } };
    yield { type: 'test:start', data: { name: 'x', nesting: 1, file: '/r/one.test.ts' } };
    yield { type: 'test:pass', data: { name: 'x', nesting: 1, file: '/r/one.test.ts', skip: 'why', details: { type: 'test' } } };
    yield { type: 'test:pass', data: { name: 'b', nesting: 0, file: '/r/two.test.ts', details: { type: 'suite' } } };
    yield { type: 'test:diagnostic', data: { message: 'tests 1' } };
  }
  assert.deepEqual(await collectSkips(events(), '/r'), [{ kind: 'test', file: 'one.test.ts', path: ['a', 'x'], reason: 'why' }]);
  assert.deepEqual(formatSkips([]), ['== test-all: nothing was skipped']);
  assert.equal(
    formatSkips([{ kind: 'suite', file: 'f', path: ['s'], reason: 'r' }])[0],
    `== test-all: skipped 1 suite and 0 tests (node's "skipped" counts tests only; a skipped suite's tests did not run):`,
  );
});

test('scripts/test-all runs the tests with this reporter and prints its report before node’s summary', async () => {
  const script = await readFile(join(repo, 'scripts/test-all'), 'utf8');
  assert.match(script, /--test-reporter=\.\/scripts\/skip-report\.ts --test-reporter-destination="\$skips"/);
  const report = script.indexOf('cat "$skips"');
  const summary = script.lastIndexOf('printf \'%s\\n\' "$summary"');
  assert.ok(report > 0 && summary > report, 'the skip report comes before the summary');
});
