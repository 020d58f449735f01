import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Cleanup, makeTempDir } from '@dotmesh/testkit';
import { ProcInUseChecker } from './in-use.ts';

/** The checker against this host's real /proc, with real processes holding a directory. */
const cleanup = new Cleanup();
after(() => cleanup.run());

/** A `sleep` child started with `cwd`, and `fd` as its stdin; killed at the end. */
async function sleeper(cwd: string, stdin: number | 'ignore' = 'ignore'): Promise<number> {
  const child = spawn('sleep', ['600'], { cwd, stdio: [stdin, 'ignore', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const exited = new Promise((r) => child.once('exit', r));
  cleanup.add(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  return child.pid!;
}

test('finds processes by working directory and by open file, not this process, and nothing in an unused tree', async () => {
  const root = await makeTempDir('in-use', cleanup);
  const checker = new ProcInUseChecker();
  const busy = join(root, 'busy');
  const quiet = join(root, 'quiet');
  const files = join(root, 'files');
  for (const dir of [busy, quiet, files]) await mkdir(dir);

  // This process holding a file open is not reported (the server excludes itself).
  const own = await open(join(quiet, 'own.txt'), 'w');
  cleanup.add(() => own.close());
  assert.deepEqual(await checker.check(quiet), { processes: [], mounts: [] });

  const byCwd = await sleeper(busy);
  const data = await open(join(files, 'data.txt'), 'w');
  const byFile = await sleeper(root, data.fd);
  await data.close();

  const inBusy = await checker.check(busy);
  assert.deepEqual(inBusy.processes, [{ pid: byCwd, command: 'sleep' }]);
  const inFiles = await checker.check(files);
  assert.deepEqual(inFiles.processes, [{ pid: byFile, command: 'sleep' }]);
  // A prefix of the name is not inside: /…/busy does not contain /…/busy-not.
  assert.deepEqual((await checker.check(`${busy}-not`)).processes, []);
  assert.deepEqual((await checker.check(quiet)).processes, []);
});
