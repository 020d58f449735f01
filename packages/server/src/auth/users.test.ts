import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import { ADMIN_USER_ID } from '@dotmesh/core';
import { MemoryStore, type Store } from '@dotmesh/store';
import type { Caller } from '../dots/caller.ts';
import { Authenticator } from './authenticator.ts';
import { newPassword } from './secrets.ts';
import { UserService } from './users.ts';

const KEY = 'CANARYUNITKEY7Q4ZL2MXW9';
const PASSWORD = 'canary-unit-password-31d';

/** Every key and value of the store, as one text. */
async function storeText(store: Store): Promise<string> {
  return (await store.range('')).kvs.map((kv) => `${kv.key}=${kv.value}`).join('\n');
}

async function login(auth: Authenticator, user: string, secret: string): Promise<Caller> {
  const caller = await auth.authenticate(user, secret, '10.1.0.1');
  assert.ok(caller, `${user} logs in`);
  return caller;
}

describe('the store holds verifiers, never an API key or a password', () => {
  test('admin from initial credentials and a registered user: the keys authenticate, the store has neither secret', async () => {
    const store = await MemoryStore.open();
    const users = new UserService(store);
    assert.equal(await users.ensureAdmin({ password: PASSWORD, apiKey: KEY }), 'created');
    const alice = await users.register({ name: 'alice', email: 'alice@example.com', password: 'alice-password' });
    const auth = new Authenticator(users);
    const aliceKey = users.apiKeyOf(alice, (await login(auth, 'alice', 'alice-password')).proof);
    assert.match(aliceKey, /^[A-Z2-7]{52}====$/);
    assert.equal((await login(auth, 'alice', aliceKey)).authMethod, 'apikey');
    assert.equal((await login(auth, 'admin', KEY)).authMethod, 'apikey');
    const text = await storeText(store);
    for (const secret of [KEY, PASSWORD, aliceKey, 'alice-password']) assert.ok(!text.includes(secret), 'no secret in the store');
    assert.match(text, /"ApiKeyHmac":"[0-9a-f]{64}"/);
    assert.doesNotMatch(text, /"ApiKey":/);
  });

  test('GetApiKey: the key sent, or the sealed copy opened with the password — also on a cached password check', async () => {
    const users = new UserService(await MemoryStore.open());
    await users.ensureAdmin({ password: PASSWORD, apiKey: KEY });
    const auth = new Authenticator(users);
    const admin = (await users.byId(ADMIN_USER_ID))!;
    assert.equal(users.apiKeyOf(admin, (await login(auth, 'admin', KEY)).proof), KEY);
    assert.equal(users.apiKeyOf(admin, (await login(auth, 'admin', PASSWORD)).proof), KEY);
    assert.equal(users.apiKeyOf(admin, (await login(auth, 'admin', PASSWORD)).proof), KEY, 'cached check');
    assert.throws(() => users.apiKeyOf(admin, undefined), { code: 'UNAUTHENTICATED' });
  });

  test('the proof never serialises or prints', async () => {
    const users = new UserService(await MemoryStore.open());
    await users.ensureAdmin({ password: PASSWORD, apiKey: KEY });
    const auth = new Authenticator(users);
    for (const secret of [KEY, PASSWORD]) {
      const caller = await login(auth, 'admin', secret);
      assert.equal(
        JSON.stringify(caller),
        `{"id":"${ADMIN_USER_ID}","name":"admin","authMethod":"${caller.authMethod}","proof":{}}`,
      );
      assert.ok(!inspect(caller, { depth: 5, showHidden: true }).includes(KEY));
      assert.match(inspect(caller), /\[CallerProof\]/);
    }
  });

  test('ResetApiKey: a new sealed key; the old one fails at once, on every node', async () => {
    const store = await MemoryStore.open();
    const users = new UserService(store);
    await users.ensureAdmin({ password: PASSWORD, apiKey: KEY });
    const [nodeA, nodeB] = [new Authenticator(users), new Authenticator(new UserService(store))];
    await login(nodeB, 'admin', KEY);
    const byPassword = await login(nodeA, 'admin', PASSWORD);
    const fresh = await users.resetApiKey(ADMIN_USER_ID, byPassword.proof);
    assert.notEqual(fresh, KEY);
    for (const node of [nodeA, nodeB]) {
      assert.equal(await node.authenticate('admin', KEY, '10.1.0.2'), null, 'the old key is refused');
      assert.equal((await login(node, 'admin', fresh)).authMethod, 'apikey');
    }
    const admin = (await users.byId(ADMIN_USER_ID))!;
    assert.equal(users.apiKeyOf(admin, (await login(nodeB, 'admin', PASSWORD)).proof), fresh);
    assert.ok(!(await storeText(store)).includes(fresh));
    await assert.rejects(users.resetApiKey(ADMIN_USER_ID, (await login(nodeA, 'admin', fresh)).proof), {
      code: 'UNAUTHENTICATED',
    });
  });

  test('UpdatePassword seals the same key under the new password; the old password stops working', async () => {
    const store = await MemoryStore.open();
    const users = new UserService(store);
    await users.ensureAdmin({ password: PASSWORD, apiKey: KEY });
    const auth = new Authenticator(users);
    const before = await login(auth, 'admin', PASSWORD);
    await users.updatePassword(ADMIN_USER_ID, before.proof, 'second-password');
    assert.equal(await auth.authenticate('admin', PASSWORD, '10.1.0.3'), null, 'the old password (even cached) fails');
    const admin = (await users.byId(ADMIN_USER_ID))!;
    assert.equal(users.apiKeyOf(admin, (await login(auth, 'admin', 'second-password')).proof), KEY);
    assert.equal((await login(auth, 'admin', KEY)).authMethod, 'apikey', 'the key stays');
    assert.throws(
      () => users.apiKeyOf(admin, before.proof),
      { code: 'UNAUTHENTICATED' },
      'a proof of the old password opens nothing',
    );
    await assert.rejects(users.updatePassword(ADMIN_USER_ID, before.proof, 'third-password'), { code: 'UNAUTHENTICATED' });
    assert.ok(!(await storeText(store)).includes('second-password'));
  });
});

describe('a store written by the previous version (API keys in clear)', () => {
  /** The previous version's record: scrypt salt and hash in hex, the API key in clear. */
  async function legacyStore(): Promise<Store> {
    const store = await MemoryStore.open();
    const pw = await newPassword(PASSWORD, ADMIN_USER_ID);
    const record = { Id: ADMIN_USER_ID, Name: 'admin', Email: '', Salt: pw.salt, Password: pw.hash, ApiKey: KEY, Metadata: {} };
    await store.put(`dotmesh.io/users/users/${ADMIN_USER_ID}`, JSON.stringify(record));
    await store.put('dotmesh.io/users/nameidx/admin', JSON.stringify({ prefix: 'x', name: 'admin', id: ADMIN_USER_ID }));
    return store;
  }

  test('start: the clear key becomes a verifier; the key and the password keep working', async () => {
    const store = await legacyStore();
    const users = new UserService(store);
    assert.ok((await storeText(store)).includes(KEY), 'the old record holds the key');
    assert.equal(await users.removeClearApiKeys(), 1);
    assert.equal(await users.removeClearApiKeys(), 0, 'idempotent');
    assert.ok(!(await storeText(store)).includes(KEY), 'the store no longer holds it');
    assert.equal(await users.ensureAdmin({ password: 'other-password', apiKey: KEY }), 'kept', 'the same key: kept');
    const auth = new Authenticator(users);
    assert.equal((await login(auth, 'admin', KEY)).authMethod, 'apikey');
    assert.equal((await login(auth, 'admin', PASSWORD)).authMethod, 'password');
  });

  test('GetApiKey by password cannot show a migrated key (UNSUPPORTED, with what to do); ResetApiKey makes one it can', async () => {
    const users = new UserService(await legacyStore());
    await users.removeClearApiKeys();
    const auth = new Authenticator(users);
    let admin = (await users.byId(ADMIN_USER_ID))!;
    assert.equal(users.apiKeyOf(admin, (await login(auth, 'admin', KEY)).proof), KEY, 'by the key itself: fine');
    const byPassword = await login(auth, 'admin', PASSWORD);
    assert.throws(
      () => users.apiKeyOf(admin, byPassword.proof),
      (e: Error & { code?: string; hint?: string }) => {
        assert.equal(e.code, 'UNSUPPORTED');
        assert.match(e.message, /The API key of admin cannot be shown: the server keeps only a verifier of it/);
        assert.match(e.hint ?? '', /keeps working.*ResetApiKey/);
        return true;
      },
    );
    await users.updatePassword(ADMIN_USER_ID, byPassword.proof, 'second-password');
    assert.equal((await login(auth, 'admin', KEY)).authMethod, 'apikey', 'a new password keeps the key');
    const fresh = await users.resetApiKey(ADMIN_USER_ID, (await login(auth, 'admin', 'second-password')).proof);
    admin = (await users.byId(ADMIN_USER_ID))!;
    assert.equal(users.apiKeyOf(admin, (await login(auth, 'admin', 'second-password')).proof), fresh);
  });

  test('a record in the old format that start-up did not rewrite still authenticates by its verifier', async () => {
    const users = new UserService(await legacyStore());
    const auth = new Authenticator(users);
    assert.equal((await login(auth, 'admin', KEY)).authMethod, 'apikey');
    assert.equal(await auth.authenticate('admin', `${KEY}x`, '10.1.0.4'), null);
  });
});
