import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import { cp, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import { isDotmeshError } from '@dotmesh/core';
import { DotmeshClient } from '@dotmesh/rpc';
import { probeCertificate } from '@dotmesh/rpc/tls';
import { createExec, MemoryDriver } from '@dotmesh/storage';
import { MemoryStore } from '@dotmesh/store';
import { makeTempDir } from '@dotmesh/testkit';
import { SILENT_LOGGER } from '../src/log.ts';
import { type RunningServer, startServer } from '../src/server.ts';
import { loadTlsMaterial, type TlsMaterial } from '../src/tls/https-server.ts';
import { defaultSubjectAltNames, ensureClusterPki, LOOPBACK_NAMES } from '../src/tls/pki.ts';

const exec = createExec({});
const API_KEY = 'TLSTESTKEY';

describe('HTTPS API with a generated per-cluster CA (real openssl)', () => {
  let dir: string;
  let material: TlsMaterial;
  let server: RunningServer;
  const client = (url: string, pin?: string) =>
    new DotmeshClient({
      url,
      user: 'admin',
      apiKey: API_KEY,
      ...(pin === undefined ? {} : { tls: { pin, pinSource: 'KNOWN' } }),
    });

  before(async () => {
    dir = await makeTempDir('tls');
    material = await loadTlsMaterial({
      stateDir: dir,
      certFile: null,
      keyFile: null,
      subjectAltNames: ['dotmesh.example.test', '192.0.2.7'],
      exec,
    });
    server = await startServer({
      driver: new MemoryDriver({ poolId: 'feedfacecafe0002' }),
      store: await MemoryStore.open(),
      logger: SILENT_LOGGER,
      nodeId: 'feedfacecafe0002',
      containerMountDir: join(dir, 'container_mnt'),
      initialAdmin: { password: 'pw', apiKey: API_KEY },
      listenHost: '127.0.0.1',
      port: 0,
      tls: { port: 0, material },
    });
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the CA and the server certificate are on disk, keys 0600 in a 0700 dir, with the SANs', async () => {
    const tls = join(dir, 'tls');
    assert.equal(statSync(tls).mode & 0o777, 0o700);
    for (const f of ['ca-key.pem', 'server-key.pem']) assert.equal(statSync(join(tls, f)).mode & 0o777, 0o600, f);
    const ca = new X509Certificate(await readFile(join(tls, 'ca.pem')));
    const leaf = new X509Certificate(await readFile(join(tls, 'server.pem')));
    assert.ok(ca.ca && !leaf.ca);
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), 'signed by the cluster CA');
    assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    for (const san of [
      'IP Address:127.0.0.1',
      'DNS:localhost',
      `DNS:${hostname()}`,
      'DNS:dotmesh.example.test',
      'IP Address:192.0.2.7',
    ]) {
      assert.ok(leaf.subjectAltName?.includes(san), `${san} in ${leaf.subjectAltName}`);
    }
    assert.ok(/IP Address:(0:0:0:0:0:0:0:1|::1)/.test(leaf.subjectAltName ?? ''), 'IPv6 loopback');
    assert.equal(material.fingerprint, leaf.fingerprint256);
  });

  test('a second start keeps the CA and the certificate (the pin stays valid)', async () => {
    const again = await ensureClusterPki({ stateDir: dir, exec, subjectAltNames: ['127.0.0.1', 'dotmesh.example.test'] });
    assert.equal(again.issued, false);
    assert.equal(new X509Certificate(await readFile(again.cert)).fingerprint256, material.fingerprint);
  });

  test('a new address on the host keeps the certificate; a newly configured name issues it again', async () => {
    const configured = ['dotmesh.example.test', '192.0.2.7'];
    const withNewInterface = await ensureClusterPki({
      stateDir: dir,
      exec,
      subjectAltNames: [...defaultSubjectAltNames(configured), '198.51.100.23'],
      requiredNames: [...LOOPBACK_NAMES, ...configured],
    });
    assert.equal(withNewInterface.issued, false, 'an address that appeared since does not change the identity');
    const chainBefore = await stat(material.chainFile);
    const restarted = await loadTlsMaterial({ stateDir: dir, certFile: null, keyFile: null, subjectAltNames: configured, exec });
    assert.equal(restarted.fingerprint, material.fingerprint);
    const chainAfter = await stat(restarted.chainFile);
    assert.deepEqual(
      [chainAfter.ino, chainAfter.mtimeMs],
      [chainBefore.ino, chainBefore.mtimeMs],
      'an unchanged chain file is not written again',
    );
    // On a copy: a name added to tlsSubjectAltNames is a reason to issue the certificate again.
    const copy = join(dir, 'copy');
    await cp(join(dir, 'tls'), join(copy, 'tls'), { recursive: true });
    const renamed = await loadTlsMaterial({
      stateDir: copy,
      certFile: null,
      keyFile: null,
      subjectAltNames: [...configured, 'new.example.test'],
      exec,
    });
    assert.notEqual(renamed.fingerprint, material.fingerprint);
    assert.deepEqual(await readFile(renamed.chainFile), renamed.cert, 'a reissued certificate rewrites the chain file');
    assert.ok(new X509Certificate(renamed.cert).subjectAltName?.includes('DNS:new.example.test'));
  });

  test('the handshake shows the generated certificate; plain HTTP still answers', async () => {
    assert.ok(server.tlsPort);
    const info = await probeCertificate('127.0.0.1', server.tlsPort);
    assert.equal(info.fingerprint, material.fingerprint);
    assert.equal(info.trustedByCa, false, 'a per-cluster CA is no public CA');
    assert.equal(await client(`http://127.0.0.1:${server.port}/rpc`).call('Ping', {}), true);
  });

  test('HTTPS with the right pin works (any case, without colons)', async () => {
    const url = `https://127.0.0.1:${server.tlsPort}/rpc`;
    assert.equal(await client(url, material.fingerprint).call('Ping', {}), true);
    assert.equal((await client(url, material.fingerprint.replaceAll(':', '').toLowerCase()).call('List', null)) !== null, true);
  });

  test('HTTPS with a wrong pin, or an unknown certificate and no pin, is refused', async () => {
    const url = `https://127.0.0.1:${server.tlsPort}/rpc`;
    const wrong = '00'.repeat(32);
    await assert.rejects(client(url, wrong).call('Ping', {}), (e) => {
      assert.ok(isDotmeshError(e) && e.code === 'PERMISSION_DENIED');
      assert.ok(
        e.message.includes(material.fingerprint) && e.message.includes('00:00:00') && e.message.includes('KNOWN'),
        e.message,
      );
      return true;
    });
    await assert.rejects(client(url).call('Ping', {}), (e) => {
      assert.ok(isDotmeshError(e) && e.code === 'PERMISSION_DENIED', String(e));
      assert.ok(e.message.includes(material.fingerprint), e.message);
      return true;
    });
  });

  test('a refused server never receives a byte of the request (no credential leaks)', async () => {
    let received = 0;
    const mitm = createTlsServer({ cert: material.cert, key: material.key }, (socket) => {
      socket.on('data', (d: Buffer) => {
        received += d.length;
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((r) => mitm.listen(0, '127.0.0.1', r));
    const port = (mitm.address() as { port: number }).port;
    try {
      const url = `https://127.0.0.1:${port}/rpc`;
      const opts = { user: 'admin', apiKey: API_KEY, timeoutMs: 2000 };
      await assert.rejects(new DotmeshClient({ url, ...opts, tls: { pin: 'AB'.repeat(32) } }).call('Ping', {}));
      await assert.rejects(new DotmeshClient({ url, ...opts }).call('Ping', {}));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(received, 0);
    } finally {
      mitm.close();
    }
  });

  test('a given certificate is served instead of the generated one', async () => {
    const other = await makeTempDir('tls-given');
    try {
      const pki = await ensureClusterPki({ stateDir: other, exec, subjectAltNames: ['127.0.0.1'] });
      const given = await loadTlsMaterial({ stateDir: dir, certFile: pki.cert, keyFile: pki.key, subjectAltNames: [], exec });
      assert.equal(given.generated, false);
      assert.notEqual(given.fingerprint, material.fingerprint);
      const s = await startServer({
        driver: new MemoryDriver({ poolId: 'feedfacecafe0003' }),
        store: await MemoryStore.open(),
        logger: SILENT_LOGGER,
        nodeId: 'feedfacecafe0003',
        containerMountDir: join(other, 'container_mnt'),
        initialAdmin: { password: 'pw', apiKey: API_KEY },
        listenHost: '127.0.0.1',
        port: 0,
        tls: { port: 0, material: given },
      });
      try {
        assert.equal((await probeCertificate('127.0.0.1', s.tlsPort ?? 0)).fingerprint, given.fingerprint);
        assert.equal(await client(`https://127.0.0.1:${s.tlsPort}/rpc`, given.fingerprint).call('Ping', {}), true);
      } finally {
        await s.close();
      }
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
