import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '@dotmesh/store';
import { Authenticator } from './authenticator.ts';
import { UserService } from './users.ts';

test('API key and password both authenticate; failures are rate-limited per user and address', async () => {
  const users = new UserService(await MemoryStore.open());
  assert.equal(await users.ensureAdmin({ password: 'pw-1234567', apiKey: 'KEY' }), 'created');
  let now = 1_000_000;
  const auth = new Authenticator(users, { now: () => now, maxFailures: 3, failureWindowMs: 60_000 });
  assert.equal((await auth.authenticate('admin', 'KEY', '10.0.0.1'))?.authMethod, 'apikey');
  assert.equal((await auth.authenticate('admin', 'pw-1234567', '10.0.0.1'))?.authMethod, 'password');
  assert.equal((await auth.authenticate('admin', 'pw-1234567', '10.0.0.1'))?.authMethod, 'password', 'cached check');
  for (let i = 0; i < 3; i++) assert.equal(await auth.authenticate('admin', 'wrong', '10.0.0.2'), null);
  assert.equal(await auth.authenticate('admin', 'KEY', '10.0.0.3'), null, 'the user is locked out for the window');
  now += 61_000;
  assert.equal((await auth.authenticate('admin', 'KEY', '10.0.0.3'))?.authMethod, 'apikey', 'and let in again after it');
  assert.equal(await auth.authenticate('nobody', 'KEY', '10.0.0.4'), null);
  assert.equal(await users.ensureAdmin({ password: 'pw-1234567', apiKey: 'KEY' }), 'kept');
  assert.equal(await users.ensureAdmin(undefined), 'kept');
});

test('initial credentials only seed a store without an admin; replaceExisting replaces them', async () => {
  const users = new UserService(await MemoryStore.open());
  assert.equal(await users.ensureAdmin({ password: 'pw-1234567', apiKey: 'KEY' }), 'created');
  const auth = new Authenticator(users);
  assert.equal(await users.ensureAdmin({ password: 'other-password', apiKey: 'KEY2' }), 'ignored');
  assert.equal((await auth.authenticate('admin', 'KEY', '10.0.0.5'))?.authMethod, 'apikey', 'the stored key stays');
  assert.equal((await auth.authenticate('admin', 'pw-1234567', '10.0.0.5'))?.authMethod, 'password', 'and the password');
  assert.equal(await auth.authenticate('admin', 'KEY2', '10.0.0.5'), null);
  assert.equal(await users.ensureAdmin({ password: 'other-password', apiKey: 'KEY2', replaceExisting: true }), 'replaced');
  const restarted = new Authenticator(users);
  assert.equal((await restarted.authenticate('admin', 'KEY2', '10.0.0.6'))?.authMethod, 'apikey');
  assert.equal((await restarted.authenticate('admin', 'other-password', '10.0.0.6'))?.authMethod, 'password');
  assert.equal(await restarted.authenticate('admin', 'KEY', '10.0.0.6'), null);
});

test('Basic header parsing', () => {
  assert.deepEqual(Authenticator.parseBasic(`Basic ${Buffer.from('admin:a:b').toString('base64')}`), {
    user: 'admin',
    secret: 'a:b',
  });
  assert.equal(Authenticator.parseBasic('Bearer x'), null);
  assert.equal(Authenticator.parseBasic(`Basic ${Buffer.from('nocolon').toString('base64')}`), null);
  assert.equal(Authenticator.parseBasic(undefined), null);
});
