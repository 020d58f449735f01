import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { skipUnless } from './capabilities.ts';
import { Cleanup } from './cleanup.ts';
import { startDockerd } from './docker.ts';
import { mountsUnder } from './loop.ts';
import { listNetns } from './netns.ts';
import { makeTempDir } from './tmp.ts';

/**
 * The kit's Docker engine (the base of the Docker volume plugin's tests): a real dockerd in a
 * private network namespace runs a container from a locally imported busybox image, a bind
 * mount carries data out, and the cleanup leaves no namespace, mount or process behind.
 */
describe('startDockerd', { skip: skipUnless(['root', 'netns', 'docker']) }, () => {
  test('runs a container from an imported busybox image; cleanup removes everything', async () => {
    const cleanup = new Cleanup();
    let ns = '';
    let socketDir = '';
    try {
      const engine = await startDockerd({ cleanup });
      ns = engine.netnsName;
      socketDir = engine.socket.replace(/\/docker\.sock$/, '');
      assert.deepEqual(listNetns(ns), [ns]);
      const { stdout: version } = await engine.docker(['version', '--format', '{{.Server.APIVersion}}']);
      assert.match(version.trim(), /^1\.\d+$/);
      const image = await engine.importBusybox();
      const out = await makeTempDir('docker-out', cleanup);
      const { stdout } = await engine.docker([
        'run',
        '--rm',
        '--network',
        'none',
        '-v',
        `${out}:/out`,
        image,
        'sh',
        '-c',
        'echo hello > /out/greeting && cat /out/greeting',
      ]);
      assert.equal(stdout.trim(), 'hello');
      assert.equal(await readFile(join(out, 'greeting'), 'utf8'), 'hello\n');
    } finally {
      await cleanup.run();
    }
    assert.deepEqual(listNetns(ns), [], 'the namespace is gone');
    assert.deepEqual(mountsUnder(`${socketDir}/`), [], 'nothing mounted is left');
  });
});
