import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type IsolatedHost, makeTempDir, skipUnless, startIsolatedHost } from '@dotmesh/testkit';

/**
 * The one test of the defaults themselves (every other test sets its own paths and ports):
 * `dm cluster init` with no options uses /var/lib/dotmesh, a preallocated 10G pool, ports
 * 32607, 32608 and 32606 (HTTPS), the Docker plugin socket /run/docker/plugins/dm.sock, and
 * finds dotmesh-server next to dm. It runs on an isolated host (testkit): its own PID, mount and
 * network namespaces, where /var/lib and /run are empty test directories and only loopback
 * exists, so the real defaults are used while a cluster installed on this machine with the same
 * defaults keeps running untouched.
 */
describe('the defaults of dm cluster init', { skip: skipUnless(['root', 'btrfs', 'losetup', 'netns']) }, () => {
  const cleanup = new Cleanup();
  let host: IsolatedHost;
  let home: string;
  let varLib: string;
  let run: string;
  const poolFile = () => join(varLib, 'dotmesh', 'dotmesh_data');

  before(async () => {
    const dir = await makeTempDir('defaults', cleanup);
    varLib = join(dir, 'var-lib');
    run = join(dir, 'run');
    home = join(dir, 'home');
    for (const d of [varLib, run, home]) await mkdir(d);
    host = await startIsolatedHost({ cleanup, dir, binds: { '/var/lib': varLib, '/run': run }, loopFiles: [poolFile()] });
    // Inside, before the namespaces go: the server stopped, the pool unmounted and its loop device detached.
    cleanup.add(() => host.dm(['cluster', 'reset', '--destroy-data'], { home }));
  });
  after(() => cleanup.run());

  test('init with no options, a first dot, then reset --destroy-data', async () => {
    const init = await host.dm(['cluster', 'init', '--no-systemd'], { home, timeoutMs: 300_000 });
    assert.equal(init.code, 0, `${init.stdout}\n${init.stderr}`);
    const config = JSON.parse(readFileSync(join(home, '.dotmesh', 'config'), 'utf8'));
    assert.equal(config.Remotes.local.Port, 32607);
    assert.equal(config.Remotes.local.Hostname, '127.0.0.1');
    // What the namespace sees as /var/lib/dotmesh is the test's directory.
    const pool = statSync(poolFile());
    assert.equal(pool.size, 10 * 2 ** 30, 'a 10G pool file');
    assert.ok(pool.blocks * 512 >= 10 * 2 ** 30, 'preallocated, not sparse');
    assert.match(host.mountinfo(), / \/var\/lib\/dotmesh\/mnt .*noatime/);
    assert.ok(statSync(join(run, 'docker', 'plugins', 'dm.sock')).isSocket(), 'the Docker plugin socket');
    const check = await host.exec(process.execPath, [
      '-e',
      "fetch('http://127.0.0.1:32608/check').then(async (r) => console.log(await r.text()))",
    ]);
    assert.equal(check.stdout.trim(), 'OK');
    assert.match(init.stdout, /HTTPS API on port 32606/);
    assert.match((await host.exec('ss', ['-Hltn', 'sport = :32606'])).stdout, /:32606\b/);
    assert.equal((await host.dm(['init', 'first'], { home })).code, 0);
    assert.equal((await host.dm(['commit', '-m', 'first commit'], { home })).code, 0);
    assert.match((await host.dm(['log'], { home })).stdout, /first commit/);
    const reset = await host.dm(['cluster', 'reset', '--destroy-data'], { home });
    assert.equal(reset.code, 0, reset.stderr);
    assert.throws(() => statSync(poolFile()), /ENOENT/);
    assert.equal((await host.exec('ss', ['-Hltn', 'sport = :32607'])).stdout.trim(), '', 'nothing listens on 32607 any more');
  });
});
