import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Cleanup } from './cleanup.ts';
import { isAlive, killTree, parseProcStat, processTree, spawnTracked, waitFor } from './process.ts';
import { makeTempDir } from './tmp.ts';

test('waitFor: resolves with the first truthy value', async () => {
  let n = 0;
  const v = await waitFor(() => (++n >= 3 ? `ready after ${n}` : undefined), { intervalMs: 1 });
  assert.equal(v, 'ready after 3');
});

test('waitFor: throws count as not ready; async functions are awaited', async () => {
  let n = 0;
  const v = await waitFor(
    async () => {
      n++;
      if (n < 3) throw new Error('connection refused');
      return n;
    },
    { intervalMs: 1 },
  );
  assert.equal(v, 3);
});

test('waitFor: times out naming what it waited for and the last error', async () => {
  const started = Date.now();
  await assert.rejects(
    waitFor(
      () => {
        throw new Error('ECONNREFUSED 127.0.0.1:32607');
      },
      { timeoutMs: 80, intervalMs: 10, what: 'the server to answer Ping' },
    ),
    (e: Error) => {
      assert.match(e.message, /timed out after 80 ms .* waiting for the server to answer Ping: last error: ECONNREFUSED/);
      assert.ok(e.cause instanceof Error);
      return true;
    },
  );
  const took = Date.now() - started;
  assert.ok(took >= 75 && took < 2000, `took ${took} ms`);
});

test('waitFor: stops when aborted', async () => {
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('test over')), 20);
  await assert.rejects(
    waitFor(() => false, { timeoutMs: 10_000, intervalMs: 5, signal: ac.signal }),
    /test over/,
  );
});

test('parseProcStat copes with spaces and parentheses in the command name', () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  fields[0] = 'S';
  fields[1] = '77';
  fields[19] = '123456';
  const st = parseProcStat(`4242 (we(ird) name) ${fields.join(' ')}`);
  assert.deepEqual(st, { pid: 4242, state: 'S', ppid: 77, startTime: '123456' });
});

test('spawnTracked + killTree: kills the process and its children, records the pid', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const dir = await makeTempDir('proc', c);
  const pidFile = join(dir, '.pids');
  // The shell starts a grandchild that ignores SIGTERM, so the SIGKILL path is exercised too.
  const p = spawnTracked('sh', ['-c', 'sh -c "trap \\"\\" TERM; echo child $$; while :; do sleep 0.05; done" & wait'], {
    cleanup: c,
    graceMs: 300,
    pidFile,
  });
  const tree = await waitFor(() => (processTree(p.pid).length >= 3 ? processTree(p.pid) : undefined), { timeoutMs: 5000 });
  assert.match(readFileSync(pidFile, 'utf8'), new RegExp(`^${p.pid}\\t\\d+\\tsh -c `));
  await waitFor(() => p.output().includes('child'), { timeoutMs: 5000, what: 'child output' });
  await p.stop();
  for (const pid of tree) assert.equal(isAlive(pid), false, `pid ${pid} still alive`);
  assert.equal((await p.exited).signal, 'SIGTERM');
  await killTree(p.pid); // idempotent on a dead tree
});

test('spawnTracked: a missing binary is reported, not crashed on', async () => {
  assert.throws(() => spawnTracked('/nonexistent/dm-no-such-binary', [], { pidFile: undefined }), /could not start/);
});
