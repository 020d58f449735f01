import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createExec, ExecError } from './exec.ts';

describe('exec', () => {
  test('runs a command, logs it, returns output and duration', async () => {
    const logs: unknown[] = [];
    const exec = createExec({ logger: { debug: (o) => logs.push(o), warn: (o) => logs.push(o) } });
    const r = await exec.run('sh', ['-c', 'echo out; echo err >&2; echo "$LANG $HOME"']);
    assert.equal(r.stdout, 'out\nC \n');
    assert.equal(r.stderr, 'err\n');
    assert.equal(r.code, 0);
    assert.equal(logs.length, 1);
    assert.deepEqual((logs[0] as { cmd: string }).cmd, 'sh');
  });

  test('non-zero exit throws ExecError carrying stderr; okCodes accepts more', async () => {
    const exec = createExec();
    await assert.rejects(exec.run('sh', ['-c', 'echo boom >&2; exit 3']), (e: unknown) => {
      assert.ok(e instanceof ExecError);
      assert.equal(e.exitCode, 3);
      assert.equal(e.code, 'INTERNAL');
      assert.match(e.message, /boom/);
      return true;
    });
    assert.equal((await exec.run('sh', ['-c', 'exit 3'], { okCodes: [0, 3] })).code, 3);
    await assert.rejects(exec.run('sh', ['-c', 'echo "No space left on device" >&2; exit 1']), { code: 'POOL_FULL' });
    await assert.rejects(exec.run('/nonexistent/cmd', []), (e: unknown) => {
      assert.ok(e instanceof ExecError);
      assert.equal(e.spawnErrno, 'ENOENT', 'a command that is not installed says so by its errno');
      return true;
    });
    await assert.rejects(exec.run('sh', ['-c', 'exit 4']), { spawnErrno: undefined });
  });

  test('input, abort signal, timeout and running()', async () => {
    const exec = createExec();
    assert.equal((await exec.run('cat', [], { input: 'piped' })).stdout, 'piped');
    const ac = new AbortController();
    const p = exec.run('sleep', ['5'], { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      exec.running().map((c) => [c.cmd, c.args]),
      [['sleep', ['5']]],
    );
    ac.abort();
    await assert.rejects(p, /aborted/);
    await assert.rejects(exec.run('sleep', ['5'], { timeoutMs: 50 }), /timed out/);
    assert.deepEqual(exec.running(), []);
  });
});
