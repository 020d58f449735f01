import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ADMIN_USER_ID, isDotmeshError } from '@dotmesh/core';
import type { BackupV1 } from '@dotmesh/rpc';
import type { Store } from '@dotmesh/store';
import { Cleanup } from '@dotmesh/testkit';
import { newPassword } from '../src/auth/secrets.ts';
import { KEYS } from '../src/cluster/store-keys.ts';
import { createDotWithBranch, type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';
import { inProcessStoreKinds } from './store-kinds.ts';

/**
 * Secrets in the store, through a whole server (in process, on the memory driver), on each
 * store kind: a store written by the previous version, an original 0.8.1 backup restored, and
 * the masters of a restored dump.
 *
 * fixtures/original-0.8.1-backup.json was written by the original's own code path: its User
 * and BackupV1 structs marshalled by Go's encoding/json (Salt and Password `[]byte`, so
 * base64), the hash by golang.org/x/crypto/scrypt (N=32768, r=8, p=1, 32 bytes, 32-byte salt)
 * and the API keys base32 (StdEncoding) of 32 random bytes. Passwords: admin-password-081,
 * alice-password-081. Its node id 6b1f0c4e93a2d758 is no node of ours.
 */
const FIXTURE = join(import.meta.dirname, 'fixtures', 'original-0.8.1-backup.json');
const ORIGINAL_NODE = '6b1f0c4e93a2d758';

const cleanup = new Cleanup();
after(() => cleanup.run());
const kinds = inProcessStoreKinds(cleanup, 'secrets');

async function storeText(store: Store): Promise<string> {
  return (await store.range('')).kvs.map((kv) => `${kv.key}=${kv.value}`).join('\n');
}

async function originalBackup(): Promise<BackupV1 & { users: Array<{ Name: string; ApiKey: string }> }> {
  return JSON.parse(await readFile(FIXTURE, 'utf8'));
}

for (const [kind, { skip, open }] of Object.entries(kinds)) {
  describe(`secrets in the store (${kind} store)`, { skip }, () => {
    let s: InProcessServer | undefined;
    const server = async (store?: Store) => {
      s = await startInProcess({ store: store ?? (await open()) });
      return s;
    };
    const closeServer = async () => {
      await s?.close();
      s = undefined;
    };

    test('a store written by the previous version: start turns its clear API key into a verifier; the key still works', async () => {
      const store = await open();
      const oldKey = 'OLDVERSIONKEYQ3ZT7WX4M2ZZ';
      const pw = await newPassword('old-version-password', ADMIN_USER_ID);
      await store.put(
        `${KEYS.usersPrefix}${ADMIN_USER_ID}`,
        JSON.stringify({
          Id: ADMIN_USER_ID,
          Name: 'admin',
          Email: '',
          Salt: pw.salt,
          Password: pw.hash,
          ApiKey: oldKey,
          Metadata: {},
        }),
      );
      await store.put(
        'dotmesh.io/users/nameidx/admin',
        JSON.stringify({ prefix: 'dotmesh.io/users/nameidx/', name: 'admin', id: ADMIN_USER_ID }),
      );
      try {
        const s = await server(store);
        assert.ok(!(await storeText(s.store)).includes(oldKey), 'the store no longer holds the key');
        const byKey = s.client('admin', oldKey);
        assert.equal(await byKey.call('Ping', null), true, 'the old key authenticates');
        await rejectsCode(s.admin.call('Ping', null), 'UNAUTHENTICATED', /./); // the initial credentials did not replace it
        assert.deepEqual(await byKey.call('GetApiKey', null), { ApiKey: oldKey });
        const byPassword = s.client('admin', 'old-version-password');
        await rejectsCode(byPassword.call('GetApiKey', null), 'UNSUPPORTED', /cannot be shown: the server keeps only a verifier/);
        const { ApiKey: fresh } = await byPassword.call('ResetApiKey', null);
        assert.deepEqual(await byPassword.call('GetApiKey', null), { ApiKey: fresh }, 'a reset key can be shown');
        await rejectsCode(byKey.call('Ping', null), 'UNAUTHENTICATED', /./);
        assert.ok(!(await storeText(s.store)).includes(fresh));
      } finally {
        await closeServer();
      }
    });

    test('an original 0.8.1 backup: its users log in with their keys and passwords; the store and DumpEtcd hold verifiers', async () => {
      const backup = await originalBackup();
      const keyOf = (name: string) => backup.users.find((u) => u.Name === name)!.ApiKey;
      try {
        const s = await server();
        assert.equal(await s.admin.call('RestoreEtcd', { Prefix: '', Dump: JSON.stringify(backup) }), true);
        for (const [name, password] of [
          ['admin', 'admin-password-081'],
          ['alice', 'alice-password-081'],
        ] as const) {
          const byKey = s.client(name, keyOf(name));
          assert.equal((await byKey.call('CurrentUser', null)).Name, name, `${name} logs in with the old key`);
          assert.equal((await s.client(name, password).call('AuthenticatedUser', null)).Name, name, 'and the old password');
          assert.deepEqual(await byKey.call('GetApiKey', null), { ApiKey: keyOf(name) });
          await rejectsCode(s.client(name, password).call('GetApiKey', null), 'UNSUPPORTED', /cannot be shown/);
        }
        const alice = await s.client('alice', keyOf('alice')).call('CurrentUser', null);
        assert.deepEqual(
          [alice.Id, alice.Email, alice.Metadata],
          ['3f1d9a52-6c0b-4e7a-9d2e-8b5c4a1f0e63', 'alice@example.com', { CustomerId: 'cus_081' }],
        );
        await rejectsCode(s.admin.call('Ping', null), 'UNAUTHENTICATED', /./); // the dump's admin replaced ours
        const text = await storeText(s.store);
        const dump = JSON.stringify(await s.client('admin', keyOf('admin')).call('DumpEtcd', { Prefix: '' }));
        for (const name of ['admin', 'alice']) {
          assert.ok(!text.includes(keyOf(name)), `the store holds no clear key of ${name}`);
          assert.ok(!dump.includes(keyOf(name)), `the dump holds no clear key of ${name}`);
        }
        assert.ok(!dump.includes(ORIGINAL_NODE), "no master names the original's node");
      } finally {
        await closeServer();
      }
    });

    test('a bad user in a dump restores nothing', async () => {
      try {
        const s = await server();
        const backup = await originalBackup();
        const bad = {
          ...backup,
          users: [...backup.users, { ...backup.users[1]!, Id: 'x', Name: 'bob', ApiKey: '', ApiKeyHmac: 'zz' }],
        };
        await rejectsCode(
          s.admin.call('RestoreEtcd', { Prefix: '', Dump: bad }),
          'INVALID_ARGUMENT',
          /user "bob" of the dump has a malformed API key verifier/,
        );
        assert.equal(await s.admin.call('Ping', null), true, 'the admin was not replaced');
        await rejectsCode(s.client('alice', backup.users[1]!.ApiKey).call('Ping', null), 'UNAUTHENTICATED', /./);
      } finally {
        await closeServer();
      }
    });

    test('masters of a dump that name unknown node ids go to the node that holds the branch, never to the unknown id', async () => {
      try {
        const s = await server();
        const { dotId, branchId } = await createDotWithBranch(s.admin, 'orders', 'staging');
        const masterOf = async (fsId: string) => (await s.store.get(KEYS.master(fsId)))?.value;
        const kept = (await s.store.get(KEYS.master(dotId)))!;
        // The store lost the branch's master key (the dot's stays): only that one is restored.
        await s.store.delete(KEYS.master(branchId));
        const refused = await s.admin
          .call('Commit', { Namespace: 'admin', Name: 'orders', Branch: 'staging', Message: 'm', Metadata: {} })
          .then(
            () => 'committed',
            (e: unknown) => (isDotmeshError(e) ? e.code : String(e)),
          );
        assert.notEqual(refused, 'committed', 'no commit on a branch without a master key');
        const backup = await originalBackup();
        const dump = {
          ...backup,
          users: [],
          filesystem_masters: [
            { filesystem_id: dotId, node_id: ORIGINAL_NODE },
            { filesystem_id: branchId, node_id: ORIGINAL_NODE },
            { filesystem_id: 'held-by-no-node', node_id: ORIGINAL_NODE },
          ],
        };
        assert.equal(await s.admin.call('RestoreEtcd', { Prefix: '', Dump: dump }), true);
        assert.deepEqual(JSON.parse((await masterOf(branchId)) ?? 'null'), {
          filesystem_id: branchId,
          node_id: 'feedfacecafe0001',
        });
        assert.equal((await s.store.get(KEYS.master(dotId)))?.modRevision, kept.modRevision, 'an existing master never moves');
        assert.equal(await masterOf('held-by-no-node'), undefined);
        const id = await s.admin.call('Commit', {
          Namespace: 'admin',
          Name: 'orders',
          Branch: 'staging',
          Message: 'after',
          Metadata: {},
        });
        assert.ok(id.length > 0, 'the restored master key is the one the node commits under');
        const masterNodes = (await s.admin.call('DumpEtcd', { Prefix: '' })).filesystem_masters ?? [];
        assert.deepEqual(
          masterNodes.map((m) => m.node_id),
          ['feedfacecafe0001', 'feedfacecafe0001'],
        );
      } finally {
        await closeServer();
      }
    });
  });
}
