import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  Cleanup,
  isAlive,
  listLoopDevicesFor,
  listNetns,
  makeTempDir,
  mountsUnder,
  parseLosetupAssociated,
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
  // Attached through a bind mount of a private mount namespace: its back-file names no path here.
  await mkdir(join(root, 'ns-src'));
  await mkdir(join(root, 'ns-target'));
  await writeFile(join(root, 'ns-src', 'pool.img'), Buffer.alloc(1024 * 1024));
  const bindScript = 'mount --bind "$1" "$2" && losetup -f --show "$2/pool.img"';
  const nsDev = (
    await runCommand('unshare', [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      bindScript,
      'sh',
      join(root, 'ns-src'),
      join(root, 'ns-target'),
    ])
  ).stdout.trim();
  c.add(() => runCommand('losetup', ['-d', nsDev]).catch(() => undefined));
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
  assert.match(res.stdout, new RegExp(`removed leftover loop device ${nsDev} \\(${root}/ns-src/pool\\.img\\)`));

  assert.equal(isAlive(leaked.pid), false);
  assert.equal(isAlive(squatter.pid), false);
  assert.equal(isAlive(bystander.pid), true);
  assert.deepEqual(mountsUnder(`${root}/`), []);
  assert.deepEqual(await listLoopDevicesFor(`${root}/`), []);
  assert.equal(parseLosetupAssociated((await runCommand('losetup', ['-a'])).stdout).includes(nsDev), false);
  assert.deepEqual(listNetns(tag), []);
  assert.deepEqual(listNetns(`other${tag}`), [`other${tag}`]);
  assert.equal(existsSync(root), false);

  // A second pass finds nothing.
  await mkdir(root);
  const again = await run(process.execPath, [script, '--root', root, '--netns-prefix', tag]);
  assert.equal(again.stdout, '');
});

test('clean-test-leftovers lists the test folders made in the temp dir during the run, and removes none', async () => {
  const c = new Cleanup();
  try {
    const tmp = await makeTempDir('fake-tmp', c);
    const root = await makeTempDir('fake-root', c);
    const before = join(tmp, 'dm-inproc-Old123');
    await mkdir(before);
    // File times have sub-millisecond digits and come from a coarse clock: keep clear of `since`.
    await sleep(50);
    const since = Date.now();
    await sleep(50);
    const strays = [join(tmp, 'dm-inproc-AbC123'), join(tmp, 'dmtest-pool-xYz789')];
    for (const d of strays) await mkdir(d);
    for (const name of ['dotmesh-demo', 'dmtest-other-run', 'dmtest-abcdef']) await mkdir(join(tmp, name));
    await writeFile(join(tmp, 'dmtest-abcdef', '.pids'), ''); // another run's root
    await writeFile(join(tmp, 'dm-file-ABCDEF'), 'a file, not a folder');

    const res = await run(process.execPath, [script, '--root', root, '--since', String(since), '--tmp-dir', tmp]).then(
      () => assert.fail('expected exit status 3 (test folders outside the root)'),
      (e: { code: number; stdout: string }) => e,
    );
    assert.equal(res.code, 3);
    assert.deepEqual(
      res.stdout.trim().split('\n'),
      strays.map((d) => `clean-test-leftovers: a test made ${d} outside the test root (not removed: rm -rf ${d})`),
    );
    for (const d of [before, ...strays]) assert.ok(existsSync(d), d);
    const none = await run(process.execPath, [script, '--root', root, '--since', String(Date.now() + 60_000), '--tmp-dir', tmp]);
    assert.equal(none.stdout, '');
    await assert.rejects(run(process.execPath, [script, '--root', root, '--since', 'yesterday']), /--since must be a time/);
  } finally {
    await c.run();
  }
});
