import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeTempDir } from '@dotmesh/testkit';
import { KnownServers, knownServersPath, serverKey } from './known-servers.ts';

const FP = 'AB:'.repeat(31).concat('AB');

test('known_servers lives beside the config, not in it', () => {
  assert.equal(knownServersPath('/root/.dotmesh/config'), '/root/.dotmesh/known_servers');
});

test('keys are host:port, IPv6 bracketed, case-insensitive', () => {
  assert.equal(serverKey('Example.COM', 443), 'example.com:443');
  assert.equal(serverKey('::1', 32606), '[::1]:32606');
  assert.equal(serverKey('[::1]', 32606), '[::1]:32606');
});

test('pins and CA entries round-trip; a set replaces; comments and unknown lines are kept; 0600', async () => {
  const dir = await makeTempDir('known');
  try {
    const path = join(dir, 'known_servers');
    await writeFile(path, `# my servers\n10.0.0.1:32606 ${'11:'.repeat(31)}11\nsomething else\n`);
    const known = await KnownServers.load(path);
    assert.deepEqual(known.get('10.0.0.1', 32606), { kind: 'pin', fingerprint: `${'11:'.repeat(31)}11` });
    assert.equal(known.get('10.0.0.1', 32607), undefined);
    known.set('10.0.0.1', 32606, { kind: 'pin', fingerprint: FP });
    known.set('::1', 32606, { kind: 'pin', fingerprint: FP });
    known.set('dotmesh.example.com', 443, { kind: 'ca' });
    await known.save();
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(
      await readFile(path, 'utf8'),
      `# my servers\n10.0.0.1:32606 ${FP}\nsomething else\n[::1]:32606 ${FP}\ndotmesh.example.com:443 ca\n`,
    );
    const again = await KnownServers.load(path);
    assert.deepEqual(again.get('[::1]', 32606), { kind: 'pin', fingerprint: FP });
    assert.deepEqual(again.get('DOTMESH.example.com', 443), { kind: 'ca' });
    assert.equal((await KnownServers.load(join(dir, 'missing'))).text(), '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
