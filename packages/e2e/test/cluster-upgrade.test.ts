import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cleanup, makeTempDir, skipUnless, spawnTracked, type TrackedProcess } from '@dotmesh/testkit';
import { initCluster, serverWithVersion, type TestCluster } from './cluster-harness.ts';

/**
 * `dm cluster upgrade` and `dm cluster grow` with the built dm and dotmesh-server. A "newer"
 * and an "older" server are copies of the built bundle with another SERVER_VERSION.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);

const lines = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');

describe('dm cluster upgrade / grow (built dm and dotmesh-server)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let bins: string;
  before(async () => {
    c = await initCluster(cleanup);
    bins = await makeTempDir('bins-', cleanup);
  });
  after(async () => cleanup.run());

  test('upgrade: a process keeps its open file in a dot; data intact; downgrade refused', async () => {
    await c.ok(['init', 'app']);
    const mnt = join(c.home, 'app');
    await c.ok(['mount', 'app', mnt]);
    await writeFile(join(mnt, 'before.txt'), 'written before the upgrade\n');
    const committed = (await c.ok(['commit', '-m', 'before upgrade'])).trim();
    // A "container": holds live.log open (fd 3) and appends a line every 20 ms.
    const writer: TrackedProcess = spawnTracked(
      'sh',
      ['-c', 'exec 3>>"$1"; i=0; while :; do echo "$i" >&3 || exit 9; i=$((i+1)); sleep 0.02; done', 'sh', join(mnt, 'live.log')],
      { cleanup },
    );
    await sleep(300);

    const newer = await serverWithVersion(bins, '0.2.0');
    const out = await c.ok(['cluster', 'upgrade', '--use-pool-dir', c.poolDir, '--server-bin', newer]);
    assert.match(out, /Upgraded dotmesh-server from 0\.1\.0 to 0\.2\.0/);
    const version = JSON.parse(await c.ok(['--json', 'version'])) as { server: { version: string } };
    assert.equal(version.server.version, '0.2.0');

    const countAfterUpgrade = (await lines(join(mnt, 'live.log'))).length;
    await sleep(300);
    const written = await lines(join(mnt, 'live.log'));
    assert.ok(written.length > countAfterUpgrade, 'the writer kept writing through and after the upgrade');
    assert.deepEqual(
      written,
      written.map((_, i) => String(i)),
      'no line lost or repeated',
    );
    await writer.stop();
    assert.equal(await readFile(join(mnt, 'before.txt'), 'utf8'), 'written before the upgrade\n');
    assert.match(await c.ok(['log']), new RegExp(`commit ${committed}\\n`));
    await c.ok(['commit', '-m', 'after upgrade']);

    const older = await serverWithVersion(bins, '0.1.5');
    const refused = await c.dm(['cluster', 'upgrade', '--use-pool-dir', c.poolDir, '--server-bin', older]);
    assert.equal(refused.code, 9, refused.stderr);
    assert.match(refused.stderr, /Refusing to downgrade dotmesh-server from 0\.2\.0 to 0\.1\.5/);
    assert.equal((JSON.parse(await c.ok(['--json', 'version'])) as { server: { version: string } }).server.version, '0.2.0');
    assert.match(await c.ok(['log']), /after upgrade/, 'the running server stays up');

    const same = JSON.parse(await c.ok(['--json', 'cluster', 'upgrade', '--use-pool-dir', c.poolDir, '--server-bin', newer])) as {
      upgraded: boolean;
    };
    assert.equal(same.upgraded, false, 'the same version: nothing to do');
  });

  test('grow: the pool grows online; shrinking is refused', async () => {
    const grown = JSON.parse(await c.ok(['--json', 'cluster', 'grow', '--pool-size', '2G'])) as {
      previousSizeBytes: number;
      sizeBytes: number;
      freeBytes: number;
    };
    assert.equal(grown.previousSizeBytes, 2 ** 30);
    assert.equal(grown.sizeBytes, 2 ** 31);
    assert.ok(grown.freeBytes > 2 ** 30);
    const shrink = await c.dm(['cluster', 'grow', '--pool-size', '1G']);
    assert.equal(shrink.code, 2);
    assert.match(shrink.stderr, /Cannot shrink the pool .* from 2\.00 GiB to 1\.00 GiB: pools only grow/);
    assert.match(await c.ok(['cluster', 'grow', '--pool-size', '2G']), /already 2\.00 GiB/);
  });

  test('log --json and dot show give the space each commit holds', async () => {
    await c.ok(['switch', 'app']);
    await writeFile(join(c.home, 'app', 'big.bin'), Buffer.alloc(3 * 2 ** 20, 7));
    await c.ok(['commit', '-m', 'big']);
    await writeFile(join(c.home, 'app', 'big.bin'), Buffer.alloc(1024, 1));
    const log = JSON.parse(await c.ok(['--json', 'log'])) as {
      commits: Array<{ metadata: { message: string }; referencedBytes: number; exclusiveBytes: number }>;
    };
    const big = log.commits.find((x) => x.metadata.message === 'big');
    assert.ok(big && big.exclusiveBytes >= 3 * 2 ** 20 && big.referencedBytes >= big.exclusiveBytes, JSON.stringify(big));
    const show = JSON.parse(await c.ok(['--json', 'dot', 'show', 'app'])) as { commitsExclusiveBytes: number };
    assert.ok(show.commitsExclusiveBytes >= 3 * 2 ** 20);
    assert.match(await c.ok(['dot', 'show', 'app']), /\nSpace held by commits: 3\.\d\d MiB\n/);
    assert.match(await c.ok(['dot', 'show', '-H', 'app']), /\ncommitsExclusiveBytes\t\d+\n/);
  });
});
