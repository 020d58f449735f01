import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ADMIN_USER_ID } from '@dotmesh/core';
import { EmbeddedStore } from '@dotmesh/store';
import { Cleanup, skipUnless, startServerProcess } from '@dotmesh/testkit';

/**
 * Upgrading a server whose store was written by the previous version, which kept API keys in
 * clear in the user records: a real server process on a real pool and the embedded store.
 */
describe('upgrade from a store with API keys in clear (real server process)', {
  skip: skipUnless(['root', 'btrfs', 'losetup']),
}, () => {
  const cleanup = new Cleanup();
  after(() => cleanup.run());
  const KEY = 'UPGRADECANARYKEY5T8QW2XZ';
  const PASSWORD = 'upgrade-canary-password';

  test('start converts the clear key to a verifier; the key and the password keep working', async () => {
    const first = await startServerProcess({ cleanup, apiKey: KEY, password: PASSWORD });
    await first.admin.call('Create', { Namespace: 'admin', Name: 'kept' });
    await first.stop();

    // Rewrite the admin's record as the previous version wrote it: hex scrypt salt and hash, the key in clear.
    const storeFile = join(first.dir, 'server', 'store.db');
    const userKey = `dotmesh.io/users/users/${ADMIN_USER_ID}`;
    const old = await EmbeddedStore.open({ path: storeFile });
    try {
      const record = JSON.parse((await old.get(userKey))!.value) as Record<string, unknown>;
      const { Id, Name, Email, Salt, Password, Metadata } = record;
      await old.put(userKey, JSON.stringify({ Id, Name, Email, Salt, Password, ApiKey: KEY, Metadata }));
      assert.ok((await old.get(userKey))?.value.includes(KEY));
    } finally {
      await old.close();
    }

    const upgraded = await first.restart();
    assert.equal(await upgraded.admin.call('Ping', null), true, 'the old key authenticates');
    assert.deepEqual(Object.keys(await upgraded.admin.call('List', null)), ['admin']);
    assert.deepEqual(await upgraded.admin.call('GetApiKey', null), { ApiKey: KEY });
    const byPassword = upgraded.client('admin', PASSWORD);
    assert.equal((await byPassword.call('AuthenticatedUser', null)).Name, 'admin', 'and the password');
    await assert.rejects(byPassword.call('GetApiKey', null), { code: 'UNSUPPORTED' });
    assert.match(await upgraded.log(), /replaced API keys an earlier version stored in clear by verifiers/);
    await upgraded.stop();

    const reopened = await EmbeddedStore.open({ path: storeFile });
    try {
      const { kvs } = await reopened.range('');
      assert.ok(kvs.some((kv) => kv.key === userKey));
      for (const kv of kvs) assert.ok(!kv.value.includes(KEY), `${kv.key} holds the key in clear`);
    } finally {
      await reopened.close();
    }
  });
});
