import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { publicKeyPin } from '@dotmesh/rpc/tls';
import { Cleanup, makeTempDir, runDm, SERVER_BUNDLE, skipUnless } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

const skip = skipUnless(['root', 'btrfs', 'losetup']);

/**
 * The API over HTTPS: `dm cluster init` makes a per-cluster CA and certificate and pins the CA;
 * another client adds the server as an https remote by its fingerprint and uses it; a wrong or
 * unconfirmed fingerprint is refused before any credential is sent or anything saved.
 */
describe('HTTPS remotes pinned in known_servers (built dm and dotmesh-server)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let fingerprint: string;
  let caCert: X509Certificate;
  const ca = () => caCert;
  const caPin = () => publicKeyPin(caCert);
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
    caCert = new X509Certificate(await readFile(join(c.poolDir, 'server', 'tls', 'ca.pem')));
    await c.ok(['init', 'overtls']);
  });
  after(async () => cleanup.run());

  test('cluster init pinned the cluster CA (not its certificate) for 127.0.0.1:<tlsPort>; local stays plain http', async () => {
    const known = join(c.home, '.dotmesh', 'known_servers');
    assert.equal(await readFile(known, 'utf8'), `127.0.0.1:${c.tlsPort} cluster-ca:${caPin()}\n`);
    assert.equal(statSync(known).mode & 0o777, 0o600);
    const config = JSON.parse(await readFile(join(c.home, '.dotmesh', 'config'), 'utf8'));
    assert.equal(config.Remotes.local.Port, c.port);
    assert.ok(ca().ca);
    assert.equal(statSync(join(c.poolDir, 'server', 'tls', 'server-key.pem')).mode & 0o777, 0o600);
    assert.ok((await c.log()).includes(fingerprint), 'the server logs its fingerprint');
  });

  test("an https remote to the host by init's CA pin needs no prompt and survives the certificate being issued again", async () => {
    const env = { DOTMESH_PASSWORD: apiKey };
    await c.ok(['remote', 'add', 'self', `admin@127.0.0.1:${c.tlsPort}`, '--https'], { env });
    const known = join(c.home, '.dotmesh', 'known_servers');
    assert.equal(await readFile(known, 'utf8'), `127.0.0.1:${c.tlsPort} cluster-ca:${caPin()}\n`, 'the pin is kept');
    const listSelf = async () => {
      await c.ok(['remote', 'switch', 'self']);
      const r = await c.dm(['list', '-H']);
      await c.ok(['remote', 'switch', 'local']);
      return r;
    };
    assert.equal((await listSelf()).code, 0);
    // A new certificate (a new key and fingerprint) of the same CA: the pin holds.
    await c.ok(['cluster', 'stop', '--use-pool-dir', c.poolDir]);
    await rm(join(c.poolDir, 'server', 'tls', 'server.pem'));
    const started = await c.ok(['cluster', 'start', '--use-pool-dir', c.poolDir, '--server-bin', SERVER_BUNDLE]);
    const reissued = new X509Certificate(await readFile(join(c.poolDir, 'server', 'tls', 'server.pem'))).fingerprint256;
    assert.notEqual(reissued, fingerprint);
    assert.ok(started.includes(`pinned in known_servers by its cluster CA ${caPin()}`), started);
    const after = await listSelf();
    assert.equal(after.code, 0, after.stderr);
    assert.match(after.stdout, /^overtls\t/m);
    fingerprint = reissued;
    await c.ok(['remote', 'rm', 'self']);
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
