import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cleanup, cleanupFor } from './cleanup.ts';

test('cleanup: runs steps newest first, each once', async () => {
  const c = new Cleanup();
  const order: string[] = [];
  c.add(() => order.push('a'));
  c.add(async () => {
    await new Promise((r) => setTimeout(r, 5));
    order.push('b');
  });
  c.add(() => order.push('c'));
  assert.equal(c.size, 3);
  await c.run();
  await c.run();
  assert.deepEqual(order, ['c', 'b', 'a']);
  assert.equal(c.size, 0);
});

test('cleanup: a throwing step does not stop the others; the error names it', async () => {
  const c = new Cleanup();
  const ran: string[] = [];
  c.add(() => ran.push('first'));
  c.add(() => {
    throw new Error('disk on fire');
  }, 'unmount pool');
  c.add(() => ran.push('last'));
  await assert.rejects(c.run(), /cleanup step "unmount pool" failed: disk on fire/);
  assert.deepEqual(ran, ['last', 'first']);
});

test('cleanup: several failures are reported together', async () => {
  const c = new Cleanup();
  c.add(() => {
    throw new Error('one');
  }, 's1');
  c.add(() => Promise.reject(new Error('two')), 's2');
  const err = await c.run().then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof AggregateError);
  assert.deepEqual(
    err.errors.map((e: Error) => e.message),
    ['cleanup step "s2" failed: two', 'cleanup step "s1" failed: one'],
  );
});

test('cleanup: steps added while running also run', async () => {
  const c = new Cleanup();
  const ran: string[] = [];
  c.add(() => {
    ran.push('outer');
    c.add(() => ran.push('inner'));
  });
  await c.run();
  assert.deepEqual(ran, ['outer', 'inner']);
});

test('cleanup: await using runs the steps at scope exit', async () => {
  const ran: string[] = [];
  {
    await using c = new Cleanup();
    c.add(() => ran.push('disposed'));
    assert.deepEqual(ran, []);
  }
  assert.deepEqual(ran, ['disposed']);
});

test('cleanupFor registers the run as an after hook', async () => {
  let hook: (() => unknown) | undefined;
  const c = cleanupFor({ after: (fn) => (hook = fn) });
  let ran = false;
  c.add(() => (ran = true));
  assert.ok(hook);
  await hook();
  assert.equal(ran, true);
});
