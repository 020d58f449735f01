import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Cleanup, isCI, makeTempDir, runDm, skipUnless } from '@dotmesh/testkit';

/**
 * The one test of the defaults themselves (every other test sets its own paths and ports):
 * `dm cluster init` with no options uses /var/lib/dotmesh, a preallocated 10G pool, ports
 * 32607 and 32608 and finds dotmesh-server next to dm. It runs only when the defaults are
 * free (CI: README command 1 ran and was reset before the tests), and resets with
 * --destroy-data afterwards.
 */
const POOL_DIR = '/var/lib/dotmesh';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
  });
}

async function defaultsBusy(): Promise<string | undefined> {
  if (existsSync(join(POOL_DIR, 'dotmesh_data'))) return `${POOL_DIR}/dotmesh_data exists (a real install)`;
  for (const port of [32606, 32607, 32608]) if (!(await portFree(port))) return `port ${port} is in use`;
  return undefined;
}

describe('the defaults of dm cluster init (serial)', { skip: skipUnless(['root', 'btrfs', 'losetup']) }, () => {
  const cleanup = new Cleanup();
  after(async () => cleanup.run());

  test('init with no options, a first dot, then reset --destroy-data', async (t) => {
    const busy = await defaultsBusy();
    if (busy) {
      if (isCI()) assert.fail(`the defaults must be free under CI=true: ${busy}`);
      t.skip(`the defaults are taken on this machine: ${busy}`);
      return;
    }
    const home = await makeTempDir('home-defaults-', cleanup);
    cleanup.add(() => runDm(['cluster', 'reset', '--destroy-data'], { home }));
    const init = await runDm(['cluster', 'init', '--no-systemd'], { home, timeoutMs: 300_000 });
    assert.equal(init.code, 0, `${init.stdout}\n${init.stderr}`);
    const config = JSON.parse(readFileSync(join(home, '.dotmesh', 'config'), 'utf8'));
    assert.equal(config.Remotes.local.Port, 32607);
    assert.equal(config.Remotes.local.Hostname, '127.0.0.1');
    const pool = statSync(join(POOL_DIR, 'dotmesh_data'));
    assert.equal(pool.size, 10 * 2 ** 30, 'a 10G pool file');
    assert.ok(pool.blocks * 512 >= 10 * 2 ** 30, 'preallocated, not sparse');
    assert.match(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${POOL_DIR}/mnt .*noatime`));
    assert.equal(await (await fetch('http://127.0.0.1:32608/check')).text(), 'OK');
    assert.equal((await runDm(['init', 'first'], { home })).code, 0);
    assert.equal((await runDm(['commit', '-m', 'first commit'], { home })).code, 0);
    assert.match((await runDm(['log'], { home })).stdout, /first commit/);
    const reset = await runDm(['cluster', 'reset', '--destroy-data'], { home });
    assert.equal(reset.code, 0, reset.stderr);
    assert.ok(!existsSync(join(POOL_DIR, 'dotmesh_data')));
    assert.ok(await portFree(32607));
  });
});
