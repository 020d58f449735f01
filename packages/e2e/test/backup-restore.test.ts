import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc';
import { Cleanup, freePort, SERVER_BUNDLE, skipUnless, startEtcd } from '@dotmesh/testkit';
import { initCluster } from './cluster-harness.ts';

/** An original 0.8.1 backup (how it was made: packages/server/test/secrets-store.test.ts). */
const ORIGINAL_BACKUP = join(import.meta.dirname, '../../server/test/fixtures/original-0.8.1-backup.json');

const cleanup = new Cleanup();
after(() => cleanup.run());

describe('dm cluster backup-etcd / restore-etcd (built dm and dotmesh-server)', () => {
  test('backup, reset (store gone), init again, restore: the old API key is valid again; dots intact', {
    skip: skipUnless(['root', 'btrfs', 'losetup']),
  }, async () => {
    const c = await initCluster(cleanup);
    const oldKey = await c.apiKey();
    const oldPassword = (await readFile(join(c.home, '.dotmesh', 'admin-password.txt'), 'utf8')).trim();
    await c.ok(['init', 'demo']);
    const mnt = join(c.home, 'demo');
    await c.ok(['mount', 'demo', mnt]);
    await writeFile(join(mnt, 'data.txt'), 'before the backup\n');
    await c.ok(['commit', '-m', 'before the backup']);
    const backup = await c.ok(['cluster', 'backup-etcd']);
    assert.equal(JSON.parse(backup).version, 'v1');
    assert.ok(!backup.includes(oldKey) && !backup.includes(oldPassword), 'the backup holds verifiers, no key or password');

    await c.ok(['cluster', 'reset', '--use-pool-dir', c.poolDir, '--server-bin', SERVER_BUNDLE]);
    await c.ok(c.initArgs());
    const url = `http://127.0.0.1:${c.port}/rpc`;
    const withOldKey = new DotmeshClient({ url, user: 'admin', apiKey: oldKey });
    assert.notEqual(await c.apiKey(), oldKey, 'init made new credentials');
    await assert.rejects(withOldKey.call('Ping', null), { code: 'UNAUTHENTICATED' });

    const newKey = await c.apiKey();
    const out = await c.ok(['cluster', 'restore-etcd'], { input: backup });
    assert.match(out, /Restored 1 user/);
    assert.equal(await withOldKey.call('Ping', null), true);
    assert.match(out, /Remote 'local' has an API key the restored users do not accept/);
    assert.match(out, /DOTMESH_PASSWORD=<it> dm cluster restore-etcd/);
    assert.equal(await c.apiKey(), newKey, 'dm cannot know the restored key from the backup alone');

    // With the password from before the backup, dm gets the restored key (GetApiKey opens its sealed copy).
    const again = await c.ok(['cluster', 'restore-etcd'], { input: backup, env: { DOTMESH_PASSWORD: oldPassword } });
    assert.match(again, /Remote 'local' now uses the restored API key/);
    assert.equal(await c.apiKey(), oldKey, 'the local remote follows the restored key');
    assert.match(await c.ok(['list']), /demo/);
    assert.match(await c.ok(['log']), /before the backup/);
    assert.equal(await readFile(join(mnt, 'data.txt'), 'utf8'), 'before the backup\n');
  });

  test('an original 0.8.1 backup: its users log in with their keys and passwords; the store keeps verifiers', {
    skip: skipUnless(['root', 'btrfs', 'losetup']),
  }, async () => {
    const c = await initCluster(cleanup);
    const original = await readFile(ORIGINAL_BACKUP, 'utf8');
    const keys = Object.fromEntries(
      (JSON.parse(original) as { users: Array<{ Name: string; ApiKey: string }> }).users.map((u) => [u.Name, u.ApiKey]),
    );
    const out = await c.ok(['cluster', 'restore-etcd'], { input: original });
    assert.match(out, /Restored 2 users/);
    assert.match(out, /Remote 'local' now uses the restored API key/);
    assert.equal(await c.apiKey(), keys.admin, "the original's admin key, from its backup");
    await c.ok(['list']); // dm works with the restored key
    const url = `http://127.0.0.1:${c.port}/rpc`;
    for (const [user, password] of [
      ['admin', 'admin-password-081'],
      ['alice', 'alice-password-081'],
    ] as const) {
      const byKey = new DotmeshClient({ url, user, apiKey: keys[user]! });
      assert.equal((await byKey.call('CurrentUser', null)).Name, user, `${user} logs in with the old key`);
      const byPassword = new DotmeshClient({ url, user, apiKey: password });
      assert.equal((await byPassword.call('AuthenticatedUser', null)).Name, user, 'and the old password');
    }
    const dump = await c.ok(['cluster', 'backup-etcd']);
    for (const key of Object.values(keys)) assert.ok(!dump.includes(key), 'a new backup holds no key in clear');
    assert.ok(!dump.includes('6b1f0c4e93a2d758'), "no master names the original's node");
    const store = await readFile(join(c.poolDir, 'server', 'store.db'), 'latin1');
    const log = await c.log();
    for (const key of Object.values(keys)) {
      assert.ok(!store.includes(key), 'nor does the store file');
      assert.ok(!log.includes(key), 'nor the server log');
    }
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
        // A node on etcd serves the node-to-node endpoint: on a port of the test's own.
        '--cluster-port',
        String(await freePort()),
      ],
    });
    const config = JSON.parse(await readFile(join(c.poolDir, 'server', 'config.json'), 'utf8'));
    assert.equal(config.store, 'etcd');
    assert.deepEqual(config.etcdEndpoints, etcd.endpoints);
    assert.ok(config.clusterPort > 0, 'a node on etcd is a node of a cluster of several nodes');
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
