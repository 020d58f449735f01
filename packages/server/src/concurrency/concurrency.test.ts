import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyedQueue } from './keyed-queue.ts';
import { KeyedRwLock } from './rw-lock.ts';

test('KeyedQueue serialises per key and runs keys in parallel', async () => {
  const q = new KeyedQueue();
  const log: string[] = [];
  const job = (k: string, n: number, ms: number) =>
    q.run(k, async () => {
      log.push(`start ${k}${n}`);
      await sleep(ms);
      log.push(`end ${k}${n}`);
      return n;
    });
  const results = await Promise.all([job('a', 1, 20), job('a', 2, 1), job('b', 1, 5)]);
  assert.deepEqual(results, [1, 2, 1]);
  assert.ok(log.indexOf('end a1') < log.indexOf('start a2'), 'a2 waits for a1');
  assert.ok(log.indexOf('start b1') < log.indexOf('end a1'), 'b runs beside a');
  await assert.rejects(
    q.run('a', async () => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(await q.run('a', async () => 'after failure'), 'after failure');
  await new Promise((r) => setImmediate(r));
  assert.equal(q.activeKeys, 0, 'idle keys are forgotten');
});

test('KeyedRwLock: exclusive waits for readers and excludes new readers', async () => {
  const l = new KeyedRwLock();
  const log: string[] = [];
  const r1 = l.shared('d', async () => {
    log.push('r1 start');
    await sleep(20);
    log.push('r1 end');
  });
  const w = l.exclusive('d', async () => {
    log.push('w start');
    await sleep(5);
    log.push('w end');
  });
  const r2 = l.shared('d', async () => {
    log.push('r2');
  });
  await Promise.all([r1, w, r2]);
  assert.deepEqual(log, ['r1 start', 'r1 end', 'w start', 'w end', 'r2']);
});
