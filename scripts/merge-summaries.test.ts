import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Cleanup, makeTempDir } from '../packages/testkit/src/index.ts';
import { formatSummary, mergeSummaries, parseSummary } from './merge-summaries.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const script = join(import.meta.dirname, 'merge-summaries.ts');

/** Runs node's test runner on one file with the spec reporter (as test-all does); its output. */
async function runnerOutput(file: string): Promise<string> {
  // A runner started by a test would otherwise report to ours (NODE_TEST_CONTEXT), not print.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_TEST_CONTEXT'));
  const r = await run(process.execPath, ['--test', '--test-reporter=spec', file], { env }).then(
    (x) => x,
    (e: { stdout: string }) => e,
  );
  return r.stdout;
}

test('two real runs of node’s test runner merge into one summary: counts summed, the longest duration', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const dir = await makeTempDir('merge-summaries', c);
  const a = join(dir, 'a.test.ts');
  const b = join(dir, 'b.test.ts');
  await writeFile(
    a,
    `import { describe, test } from 'node:test';
describe('lane a', () => {
  test('passes', () => {});
  test('skips', (t) => t.skip('no reason to run'));
  test('todo', { todo: true }, () => {});
});
`,
  );
  await writeFile(
    b,
    `import { test } from 'node:test';
test('passes', () => {});
test('fails', () => { throw new Error('on purpose'); });
`,
  );
  const [outA, outB] = await Promise.all([runnerOutput(a), runnerOutput(b)]);
  const sa = parseSummary(outA);
  const sb = parseSummary(outB);
  assert.deepEqual(
    { ...sa, duration_ms: 0 },
    {
      tests: 3,
      suites: 1,
      pass: 1,
      fail: 0,
      cancelled: 0,
      skipped: 1,
      todo: 1,
      duration_ms: 0,
    },
  );
  assert.deepEqual(
    { ...sb, duration_ms: 0 },
    {
      tests: 2,
      suites: 0,
      pass: 1,
      fail: 1,
      cancelled: 0,
      skipped: 0,
      todo: 0,
      duration_ms: 0,
    },
  );
  const logA = join(dir, 'a.log');
  const logB = join(dir, 'b.log');
  await writeFile(logA, outA);
  await writeFile(logB, outB);
  const { stdout } = await run(process.execPath, [script, logA, logB], { cwd: repo });
  const longest = Math.max(sa!.duration_ms!, sb!.duration_ms!);
  assert.deepEqual(stdout.trimEnd().split('\n'), [
    'ℹ tests 5',
    'ℹ suites 1',
    'ℹ pass 2',
    'ℹ fail 1',
    'ℹ cancelled 0',
    'ℹ skipped 1',
    'ℹ todo 1',
    `ℹ duration_ms ${longest}`,
  ]);
  // The merged lines parse back to the same numbers (CI reads them as a runner's summary).
  assert.deepEqual(parseSummary(stdout), mergeSummaries([sa!, sb!]));
});

test('a log without a summary (its runner died) is an error naming that log; nothing is printed', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const dir = await makeTempDir('merge-summaries', c);
  const good = join(dir, 'good.log');
  const cut = join(dir, 'cut.log');
  await writeFile(good, 'ℹ tests 1\nℹ pass 1\nℹ fail 0\nℹ duration_ms 10.5\n');
  await writeFile(cut, '▶ a suite\n  ✔ a test (1ms)\n');
  const err = await run(process.execPath, [script, good, cut]).then(
    () => assert.fail('expected exit status 1'),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
  assert.equal(err.code, 1);
  assert.equal(err.stdout, '');
  assert.match(err.stderr, new RegExp(`${cut} has no summary of node's test runner`));
  assert.deepEqual(parseSummary(await readFile(good, 'utf8')), { tests: 1, pass: 1, fail: 0, duration_ms: 10.5 });
});

test('parseSummary takes each key’s last value and ignores lines that only look alike', () => {
  assert.equal(parseSummary('no summary here\n'), undefined);
  assert.deepEqual(parseSummary('ℹ tests 2\nℹ tests 4\n  ℹ pass 9\nℹ pass 3\nℹ fail x\nℹ duration_ms 12.25\n'), {
    tests: 4,
    pass: 3,
    duration_ms: 12.25,
  });
  assert.deepEqual(formatSummary({ fail: 0, tests: 1 }), ['ℹ tests 1', 'ℹ fail 0']);
});
