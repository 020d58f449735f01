import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import {
  Cleanup,
  isAlive,
  listLoopDevicesFor,
  listNetns,
  makeTempDir,
  mountsUnder,
  requireCapabilities,
  runCommand,
  spawnTracked,
} from '../packages/testkit/src/index.ts';
import { parsePidFile } from './clean-test-leftovers.ts';

const run = promisify(execFile);
const script = join(import.meta.dirname, 'clean-test-leftovers.ts');

test('parsePidFile reads pid, start time and command; ignores junk', () => {
  assert.deepEqual(parsePidFile('12\t345\tetcd --data-dir /tmp/x\nnot a line\n\n7\t\tsh -c a\tb\n'), [
    { pid: 12, startTime: '345', cmd: 'etcd --data-dir /tmp/x' },
    { pid: 7, startTime: '', cmd: 'sh -c a\tb' },
  ]);
});

test('clean-test-leftovers removes processes, mounts, loop devices and namespaces of one run only', async (t) => {
  if (!requireCapabilities(t, ['root', 'losetup', 'netns'])) return;
  const c = new Cleanup();
  t.after(() => c.run());
  const root = await makeTempDir('leftovers', c);
  const tag = `dmc${process.pid.toString(36)}-`;

  // A "leaked" server: recorded in the run's PID file, with a child of its own.
  const leaked = spawnTracked('sh', ['-c', 'sleep 600 & wait'], { pidFile: join(root, '.pids') });
  c.add(() => leaked.stop());
  // A process that merely uses the run's directory as its working directory.
  await mkdir(join(root, 'work'));
  const squatter = spawnTracked('sleep', ['600'], { cwd: join(root, 'work'), pidFile: undefined });
  c.add(() => squatter.stop());
  // Not ours: must survive.
  const bystander = spawnTracked('sleep', ['600'], { pidFile: undefined });
  c.add(() => bystander.stop());

  await mkdir(join(root, 'mnt'));
  await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', join(root, 'mnt')]);
  await writeFile(join(root, 'disk.img'), Buffer.alloc(1024 * 1024));
  const dev = (await runCommand('losetup', ['-f', '--show', join(root, 'disk.img')])).stdout.trim();
  c.add(() => runCommand('losetup', ['-d', dev]).catch(() => undefined));
  await runCommand('ip', ['netns', 'add', `${tag}a`]);
  c.add(() => runCommand('ip', ['netns', 'del', `${tag}a`]).catch(() => undefined));
  await runCommand('ip', ['netns', 'add', `other${tag}`]);
  c.add(() => runCommand('ip', ['netns', 'del', `other${tag}`]).catch(() => undefined));

  const res = await run(process.execPath, [script, '--root', root, '--netns-prefix', tag, '--remove-root']).then(
    () => assert.fail('expected exit status 2 (leftovers found)'),
    (e: { code: number; stdout: string }) => e,
  );
  assert.equal(res.code, 2);
  assert.match(res.stdout, new RegExp(`removed leftover process ${leaked.pid} still running: sh -c sleep 600`));
  assert.match(res.stdout, new RegExp(`removed leftover process ${squatter.pid} uses the test root`));
  assert.match(res.stdout, new RegExp(`removed leftover network namespace ${tag}a`));
  assert.match(res.stdout, /removed leftover mount .*\/mnt/);
  assert.match(res.stdout, new RegExp(`removed leftover loop device ${dev}`));

  assert.equal(isAlive(leaked.pid), false);
  assert.equal(isAlive(squatter.pid), false);
  assert.equal(isAlive(bystander.pid), true);
  assert.deepEqual(mountsUnder(`${root}/`), []);
  assert.deepEqual(await listLoopDevicesFor(`${root}/`), []);
  assert.deepEqual(listNetns(tag), []);
  assert.deepEqual(listNetns(`other${tag}`), [`other${tag}`]);
  assert.equal(existsSync(root), false);

  // A second pass finds nothing.
  await mkdir(root);
  const again = await run(process.execPath, [script, '--root', root, '--netns-prefix', tag]);
  assert.equal(again.stdout, '');
});
