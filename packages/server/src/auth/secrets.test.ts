import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  API_KEY_BYTES,
  apiKeyMatches,
  derivePassword,
  newApiKeyVerifier,
  newPassword,
  openApiKey,
  randomToken,
  sealApiKey,
} from './secrets.ts';

/** An original 0.8.1 backup, written by the original's code (how it was made: packages/server/test/secrets-store.test.ts). */
const ORIGINAL_BACKUP = join(import.meta.dirname, '../../test/fixtures/original-0.8.1-backup.json');

test("the password verifier is the original's scrypt hash: a hash the original wrote verifies", async () => {
  const dump = JSON.parse(await readFile(ORIGINAL_BACKUP, 'utf8')) as {
    users: Array<{ Id: string; Name: string; Salt: string; Password: string }>;
  };
  const admin = dump.users.find((u) => u.Name === 'admin')!;
  const salt = Buffer.from(admin.Salt, 'base64').toString('hex');
  const derived = await derivePassword('admin-password-081', salt, admin.Id);
  assert.equal(derived.hash, Buffer.from(admin.Password, 'base64').toString('hex'));
  assert.notEqual((await derivePassword('admin-password-082', salt, admin.Id)).hash, derived.hash);
  assert.equal(derived.unlockKey.length, 32);
  assert.ok(!derived.unlockKey.equals(Buffer.from(derived.hash, 'hex')), 'the unlock key is not the stored hash');
});

test('a new password: random salt, the same password gives another hash and unlock key', async () => {
  const a = await newPassword('pw-1234567', 'u1');
  const b = await newPassword('pw-1234567', 'u1');
  assert.match(a.salt, /^[0-9a-f]{64}$/);
  assert.match(a.hash, /^[0-9a-f]{64}$/);
  assert.notEqual(a.salt, b.salt);
  assert.notEqual(a.hash, b.hash);
  assert.ok(!a.unlockKey.equals(b.unlockKey));
  assert.ok((await derivePassword('pw-1234567', a.salt, 'u1')).unlockKey.equals(a.unlockKey));
  assert.ok(!(await derivePassword('pw-1234567', a.salt, 'u2')).unlockKey.equals(a.unlockKey), 'bound to the user id');
});

test('API key verifier: an HMAC that matches its key only, for its user only', () => {
  const key = randomToken(API_KEY_BYTES);
  assert.match(key, /^[A-Z2-7]{52}====$/, "the original's format: base32 of 32 bytes");
  const v = newApiKeyVerifier(key, 'u1');
  assert.match(v.hmac, /^[0-9a-f]{64}$/);
  assert.ok(!v.hmac.includes(key) && !v.salt.includes(key));
  assert.ok(apiKeyMatches(key, 'u1', v));
  assert.ok(!apiKeyMatches(`${key}x`, 'u1', v));
  assert.ok(!apiKeyMatches(key.slice(1), 'u1', v));
  assert.ok(!apiKeyMatches(key, 'u2', v), 'the same key of another user is another verifier');
  assert.notEqual(newApiKeyVerifier(key, 'u1').hmac, v.hmac, 'a random salt per key');
  assert.ok(!apiKeyMatches(key, 'u1', { salt: '', hmac: '' }), 'no verifier: no key matches');
  assert.ok(!apiKeyMatches('', 'u1', { salt: v.salt, hmac: 'zz' }));
});

test('sealed API key: opens with its unlock key, for its user and verifier only', async () => {
  const key = randomToken(API_KEY_BYTES);
  const pw = await newPassword('pw-1234567', 'u1');
  const v = newApiKeyVerifier(key, 'u1');
  const sealed = sealApiKey(key, pw.unlockKey, 'u1', v);
  assert.ok(!Buffer.from(sealed, 'base64').toString('latin1').includes(key));
  assert.notEqual(sealApiKey(key, pw.unlockKey, 'u1', v), sealed, 'a random nonce per seal');
  assert.equal(openApiKey(sealed, pw.unlockKey, 'u1', v), key);
  const other = await newPassword('pw-7654321', 'u1');
  assert.equal(openApiKey(sealed, other.unlockKey, 'u1', v), undefined, 'another password');
  assert.equal(openApiKey(sealed, pw.unlockKey, 'u2', v), undefined, 'another user');
  assert.equal(openApiKey(sealed, pw.unlockKey, 'u1', newApiKeyVerifier(key, 'u1')), undefined, 'another verifier');
  const tampered = Buffer.from(sealed, 'base64');
  tampered[15] = (tampered[15] ?? 0) ^ 1;
  assert.equal(openApiKey(tampered.toString('base64'), pw.unlockKey, 'u1', v), undefined, 'tampered');
  assert.equal(openApiKey('', pw.unlockKey, 'u1', v), undefined);
  assert.equal(openApiKey('bm90IHNlYWxlZA==', pw.unlockKey, 'u1', v), undefined);
});
