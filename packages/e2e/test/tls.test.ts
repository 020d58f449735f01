import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, makeTempDir, runDm, skipUnless } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

const skip = skipUnless(['root', 'btrfs', 'losetup']);

/**
 * The API over HTTPS: `dm cluster init` makes a per-cluster CA and certificate and pins it;
 * another client adds the server as an https remote by its fingerprint and uses it; a wrong or
 * unconfirmed fingerprint is refused before any credential is sent or anything saved.
 */
describe('HTTPS remotes pinned in known_servers (built dm and dotmesh-server)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let fingerprint: string;
  let home: string;
  const dm = (args: readonly string[], input = '') => runDm(args, { home, input, env: { DOTMESH_PASSWORD: apiKey } });
  let apiKey = '';
  const configFile = () => join(home, '.dotmesh', 'config');
  const knownFile = () => join(home, '.dotmesh', 'known_servers');

  before(async () => {
    c = await initCluster(cleanup);
    apiKey = await c.apiKey();
    home = await makeTempDir('home-client-', cleanup);
    fingerprint = new X509Certificate(await readFile(join(c.poolDir, 'server', 'tls', 'server.pem'))).fingerprint256;
    await c.ok(['init', 'overtls']);
  });
  after(async () => cleanup.run());

  test('cluster init pinned its own certificate for 127.0.0.1:<tlsPort>; local stays plain http', async () => {
    const known = join(c.home, '.dotmesh', 'known_servers');
    assert.equal(await readFile(known, 'utf8'), `127.0.0.1:${c.tlsPort} ${fingerprint}\n`);
    assert.equal(statSync(known).mode & 0o777, 0o600);
    const config = JSON.parse(await readFile(join(c.home, '.dotmesh', 'config'), 'utf8'));
    assert.equal(config.Remotes.local.Port, c.port);
    const ca = new X509Certificate(await readFile(join(c.poolDir, 'server', 'tls', 'ca.pem')));
    assert.ok(ca.ca);
    assert.equal(statSync(join(c.poolDir, 'server', 'tls', 'server-key.pem')).mode & 0o777, 0o600);
    assert.ok((await c.log()).includes(fingerprint), 'the server logs its fingerprint');
  });

  test('a wrong fingerprint, or no answer to the prompt, is refused and nothing is saved', async () => {
    const wrong = await dm([
      'remote',
      'add',
      'secure',
      `admin@127.0.0.1:${c.tlsPort}`,
      '--https',
      '--trust-fingerprint',
      '00'.repeat(32),
    ]);
    assert.notEqual(wrong.code, 0);
    assert.ok(wrong.stderr.includes(fingerprint), wrong.stderr);
    const unasked = await dm(['remote', 'add', 'secure', `https://admin@127.0.0.1:${c.tlsPort}`]);
    assert.notEqual(unasked.code, 0);
    assert.ok(
      unasked.stdout.includes(`The server's certificate is not trusted: SHA256 fingerprint ${fingerprint}`),
      unasked.stdout,
    );
    assert.ok(unasked.stdout.includes('Trust it? [y/N]'));
    assert.ok(!existsSync(knownFile()) && !existsSync(configFile()));
  });

  test('the right fingerprint pins it; dm list then works over https', async () => {
    const add = await dm([
      'remote',
      'add',
      'secure',
      `admin@127.0.0.1:${c.tlsPort}`,
      '--https',
      '--trust-fingerprint',
      fingerprint.replaceAll(':', '').toLowerCase(),
    ]);
    assert.equal(add.code, 0, add.stderr);
    assert.equal(await readFile(knownFile(), 'utf8'), `127.0.0.1:${c.tlsPort} ${fingerprint}\n`);
    assert.equal(statSync(knownFile()).mode & 0o777, 0o600);
    const config = JSON.parse(await readFile(configFile(), 'utf8'));
    assert.equal(config.CurrentRemote, 'secure');
    assert.deepEqual(Object.keys(config), ['CurrentRemote', 'Remotes', 'S3Remotes'], 'the original shape');
    assert.deepEqual(Object.keys(config.Remotes.secure), [
      'User',
      'Hostname',
      'Port',
      'ApiKey',
      'CurrentVolume',
      'CurrentBranches',
      'DefaultRemoteVolumes',
    ]);
    assert.equal(config.Remotes.secure.Port, c.tlsPort);
    const list = await dm(['list', '-H']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^overtls\t/m);
  });

  test('answering y at the prompt pins too; a changed pin makes every command refuse', async () => {
    const add = await dm(['remote', 'add', 'again', `https://admin@localhost:${c.tlsPort}`], 'y\n');
    assert.equal(add.code, 0, add.stderr);
    assert.ok((await readFile(knownFile(), 'utf8')).includes(`localhost:${c.tlsPort} ${fingerprint}\n`));
    await writeFile(knownFile(), `127.0.0.1:${c.tlsPort} ${'11:'.repeat(31)}11\n`, { mode: 0o600 });
    const list = await dm(['list']);
    assert.notEqual(list.code, 0);
    assert.ok(list.stderr.includes(fingerprint) && list.stderr.includes('known_servers'), list.stderr);
  });
});
