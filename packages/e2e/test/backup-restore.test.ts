import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc';
import { Cleanup, SERVER_BUNDLE, skipUnless, startEtcd } from '@dotmesh/testkit';
import { initCluster } from './cluster-harness.ts';

const cleanup = new Cleanup();
after(() => cleanup.run());

describe('dm cluster backup-etcd / restore-etcd (built dm and dotmesh-server)', () => {
  test('backup, reset (store gone), init again, restore: the old API key is valid again; dots intact', {
    skip: skipUnless(['root', 'btrfs', 'losetup']),
  }, async () => {
    const c = await initCluster(cleanup);
    const oldKey = await c.apiKey();
    await c.ok(['init', 'demo']);
    const mnt = join(c.home, 'demo');
    await c.ok(['mount', 'demo', mnt]);
    await writeFile(join(mnt, 'data.txt'), 'before the backup\n');
    await c.ok(['commit', '-m', 'before the backup']);
    const backup = await c.ok(['cluster', 'backup-etcd']);
    assert.equal(JSON.parse(backup).version, 'v1');

    await c.ok(['cluster', 'reset', '--use-pool-dir', c.poolDir, '--server-bin', SERVER_BUNDLE]);
    await c.ok(c.initArgs());
    const url = `http://127.0.0.1:${c.port}/rpc`;
    const withOldKey = new DotmeshClient({ url, user: 'admin', apiKey: oldKey });
    assert.notEqual(await c.apiKey(), oldKey, 'init made new credentials');
    await assert.rejects(withOldKey.call('Ping', null), { code: 'UNAUTHENTICATED' });

    const out = await c.ok(['cluster', 'restore-etcd'], { input: backup });
    assert.match(out, /Restored 1 user/);
    assert.equal(await withOldKey.call('Ping', null), true);
    assert.equal(await c.apiKey(), oldKey, 'the local remote follows the restored key');
    assert.match(await c.ok(['list']), /demo/);
    assert.match(await c.ok(['log']), /before the backup/);
    assert.equal(await readFile(join(mnt, 'data.txt'), 'utf8'), 'before the backup\n');
  });

  test('dm cluster init --store etcd over TLS: the server keeps its store in etcd', {
    skip: skipUnless(['root', 'btrfs', 'losetup', 'etcd']),
  }, async () => {
    const etcd = await startEtcd({ cleanup, tls: true });
    const c = await initCluster(cleanup, {
      extraInitArgs: [
        '--store',
        'etcd',
        '--etcd-endpoints',
        etcd.endpoints.join(','),
        '--etcd-ca-file',
        etcd.caFile!,
        '--etcd-cert-file',
        etcd.certFile!,
        '--etcd-key-file',
        etcd.keyFile!,
      ],
    });
    const config = JSON.parse(await readFile(join(c.poolDir, 'server', 'config.json'), 'utf8'));
    assert.equal(config.store, 'etcd');
    assert.deepEqual(config.etcdEndpoints, etcd.endpoints);
    await c.ok(['init', 'indb']);
    assert.match(await c.ok(['list']), /indb/);
    const dump = JSON.parse(await c.ok(['cluster', 'backup-etcd']));
    assert.deepEqual(
      dump.registry_filesystems.map((r: { Name: { Name: string } }) => r.Name.Name),
      ['indb'],
    );
    await c.ok(['cluster', 'restore-etcd'], { input: JSON.stringify(dump) });
    assert.match(await c.ok(['list']), /indb/);
  });
});
