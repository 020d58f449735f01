import assert from 'node:assert/strict';
import { test } from 'node:test';
import { atLeast, atMost, formatBytes, GiB, MiB, percentile, ratio, rotate, round, single, summarize } from './harness.ts';
import { markdownTable, type Row, textTable } from './report.ts';

test('percentile interpolates between closest ranks (numpy type 7)', () => {
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.equal(percentile([4, 3, 2, 1], 50), 2.5, 'order of samples does not matter');
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9.1);
  assert.equal(percentile([7], 90), 7);
  assert.equal(percentile([1, 9], 0), 1);
  assert.equal(percentile([1, 9], 100), 9);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.throws(() => percentile([1], 101), RangeError);
});

test('summarize gives n, min, p50, p90, max, mean; empty samples give NaN', () => {
  const s = summarize([10, 30, 20, 40]);
  assert.deepEqual(s, { n: 4, min: 10, p50: 25, p90: 37, max: 40, mean: 25 });
  assert.ok(Number.isNaN(summarize([]).p50));
  assert.deepEqual(single(3), { n: 1, min: 3, p50: 3, p90: 3, max: 3, mean: 3 });
});

test('ratio is NaN against a zero reference', () => {
  assert.equal(ratio(30, 10), 3);
  assert.ok(Number.isNaN(ratio(1, 0)));
});

test('verdicts: met with the room left, missed by how much', () => {
  const reference = 5;
  const met = atMost('p50 ≤ ref + 25 ms', 20, reference + 25, 'ms');
  assert.equal(met.met, true);
  assert.equal(met.margin, 10);
  assert.equal(met.text, 'met (10 ms to spare)');
  const missed = atMost('p50 ≤ ref + 25 ms', 42.5, reference + 25, 'ms');
  assert.equal(missed.met, false);
  assert.equal(missed.text, 'missed by 12.5 ms');
  assert.equal(atMost('x', 30, 30, 'ms').met, true, 'the limit itself is met');
  const rate = atLeast('≥ 200/s', 150, 200, '/s');
  assert.deepEqual([rate.met, rate.margin, rate.text], [false, -50, 'missed by 50 /s']);
  assert.equal(atLeast('≥ 0.5 × ref', 0.61, 0.5, '×').text, 'met (0.11× above)');
});

test('round and formatBytes for display', () => {
  assert.equal(round(1234.5), 1235);
  assert.equal(round(12.345), 12.3);
  assert.equal(round(1.23456), 1.23);
  assert.equal(formatBytes(MiB), '1 MiB');
  assert.equal(formatBytes(100 * MiB), '100 MiB');
  assert.equal(formatBytes(10 * GiB), '10 GiB');
  assert.equal(formatBytes(1500), '1500 B');
});

test('tables show p50/p90, the reference and the verdict', () => {
  const row: Row = {
    id: 'P1',
    what: 'Commit | RPC',
    size: '1 MiB',
    unit: 'ms',
    figure: summarize([10, 20, 30]),
    reference: { what: 'snapshot -r', stats: summarize([4, 5, 6]) },
    diff: 15,
    verdict: atMost('p50 ≤ ref + 25 ms', 20, 30, 'ms'),
  };
  const text = textTable([row]).split('\n');
  assert.equal(text.length, 3);
  assert.match(
    text[2]!,
    /^P1 +Commit \| RPC +1 MiB +ms +20 +28 +snapshot -r: 5 \/ 5\.8 +\+15 +p50 ≤ ref \+ 25 ms: met \(10 ms to spare\)$/,
  );
  const md = markdownTable([row]).split('\n');
  assert.equal(md[1], '| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  assert.match(md[2]!, /^\| P1 \| Commit \\\| RPC \| 1 MiB \|/);
});

test('rotate runs every measurement once per sample, each going first in turn', async () => {
  const order: string[][] = [];
  for (let i = 0; i < 4; i++) {
    const ran: string[] = [];
    await rotate(
      i,
      ['raw', 'bare', 'installed'].map((name) => async () => ran.push(name)),
    );
    order.push(ran);
  }
  assert.deepEqual(order, [
    ['raw', 'bare', 'installed'],
    ['bare', 'installed', 'raw'],
    ['installed', 'raw', 'bare'],
    ['raw', 'bare', 'installed'],
  ]);
});
