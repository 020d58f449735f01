import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createExec } from '@dotmesh/storage';
import { MemoryStore } from '@dotmesh/store';
import { Cleanup, makeTempDir } from '@dotmesh/testkit';
import { SILENT_LOGGER } from '../log.ts';
import { caPublicKeyHash, ensureClusterPki, LOOPBACK_NAMES, signCsr } from '../tls/pki.ts';
import { rejoinCluster } from './join-client.ts';
import { finishJoinFiles } from './join-files.ts';
import { serveJoin } from './join-issuer.ts';
import { JoinTokens } from './join-tokens.ts';
import type { ClusterView } from './view.ts';

/**
 * A pool of this cluster rejoining as its node at a new address (join-client.ts rejoinCluster)
 * against the real join endpoint (serveJoin over HTTPS, the cluster CA, real tokens): while the
 * node is live the endpoint refuses and the rejoin asks again, then gets certificates for the
 * new address; a node that stays live past the lease's TTL is refused naming it, and its token
 * is not used. `live` is the issuing node's view of which nodes run (a ClusterView reads it from
 * the store's address records; here it is set by the test).
 */
async function cluster(cleanup: Cleanup) {
  const exec = createExec({});
  const issuerDir = await makeTempDir('issuer', cleanup);
  const pki = await ensureClusterPki({ stateDir: issuerDir, exec, subjectAltNames: [...LOOPBACK_NAMES] });
  const caPem = await readFile(pki.caCert, 'utf8');
  const store = await MemoryStore.open();
  const tokens = new JoinTokens(store);
  const live = new Map<string, readonly string[]>();
  const view = { node: (id: string) => (live.has(id) ? { addresses: live.get(id) } : undefined) } as unknown as ClusterView;
  const server = createServer({ cert: await readFile(pki.cert), key: await readFile(pki.key) }, (req, res) => {
    void serveJoin(
      {
        tokens,
        view,
        caPem,
        canSign: async () => true,
        sign: (o) => signCsr(exec, issuerDir, o),
        etcd: async () => ({ Endpoints: ['https://127.0.0.1:1'], Prefix: 'dotmesh.io/', CaCert: null, Managed: true }),
        logger: SILENT_LOGGER,
      },
      req,
      res,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
  cleanup.add(() => store.close());
  // The moved pool's state: the cluster CA (it is a node of this cluster), no certificate for its new address.
  const stateDir = await makeTempDir('moved', cleanup);
  await mkdir(join(stateDir, 'tls'), { recursive: true, mode: 0o700 });
  await copyFile(pki.caCert, join(stateDir, 'tls', 'ca.pem'));
  const caHash = caPublicKeyHash(new X509Certificate(caPem));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rejoin = (token: string, leaseTtlSeconds: number) =>
    rejoinCluster({
      target: { address, caHash },
      token,
      nodeId: 'node3',
      stateDir,
      exec,
      nodeAddresses: ['10.0.0.4'],
      httpsNames: null,
      leaseTtlSeconds,
      logger: SILENT_LOGGER,
      pollMs: 200,
    });
  return { tokens, live, stateDir, rejoin };
}

describe('a pool rejoins as its node at a new address', () => {
  test('while its node is live elsewhere the rejoin waits; once it is gone, certificates for the new address', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const c = await cluster(cleanup);
    const { token } = await c.tokens.create({ ttlSeconds: 60, uses: 1, description: '' });
    c.live.set('node3', ['10.0.0.3']);
    const gone = setTimeout(() => c.live.delete('node3'), 1500);
    const started = Date.now();
    try {
      const joined = await c.rejoin(token, 5);
      assert.ok(Date.now() - started >= 1400, 'it waited for the node to be gone');
      assert.equal(joined.etcd.managed, true);
    } finally {
      clearTimeout(gone);
    }
    const tls = join(c.stateDir, 'tls');
    for (const f of ['node.pem', 'etcd.pem']) {
      const cert = new X509Certificate(await readFile(join(tls, f)));
      assert.ok(cert.subject.split('\n').includes('CN=node3'));
      assert.ok(cert.subjectAltName?.split(', ').includes('IP Address:10.0.0.4'), `${f} names the new address`);
      assert.ok(
        cert.checkPrivateKey(createPrivateKey(await readFile(join(tls, f.replace('.pem', '-key.pem'))))),
        `${f} goes with its key`,
      );
    }
    assert.ok(!existsSync(join(tls, 'join-files.json')), 'the journal is done');
    assert.ok(!existsSync(join(tls, 'node.pem.join')) && !existsSync(join(tls, 'node-key.pem.join')), 'nothing staged is left');
    assert.deepEqual(await c.tokens.list(), [], 'the token was used');
  });

  test('a node still live past the lease TTL is refused, naming where it runs; the token is not used', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const c = await cluster(cleanup);
    const { token } = await c.tokens.create({ ttlSeconds: 60, uses: 1, description: '' });
    c.live.set('node3', ['10.0.0.3']);
    const started = Date.now();
    await assert.rejects(c.rejoin(token, 2), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CONFLICT');
      assert.match(e.message, /node id node3 is already live at 10\.0\.0\.3.*\(still live after 3 s: it runs\)/);
      return true;
    });
    assert.ok(Date.now() - started >= 2900, 'it waited the lease TTL and a second first');
    assert.equal((await c.tokens.list())[0]?.UsesLeft, 1, 'the token was not used');
    assert.ok(!existsSync(join(c.stateDir, 'tls', 'node.pem')), 'no certificate was written');
  });

  test('a join killed while it moved its files in place is finished by the next start', async (t) => {
    const cleanup = new Cleanup();
    t.after(() => cleanup.run());
    const tls = join(await makeTempDir('killed', cleanup), 'tls');
    await mkdir(tls);
    // The journal was written and node.pem moved; node-key.pem was not yet.
    await writeFile(join(tls, 'node.pem'), 'new cert');
    await writeFile(join(tls, 'node-key.pem'), 'old key');
    await writeFile(join(tls, 'node-key.pem.join'), 'new key');
    await writeFile(
      join(tls, 'join-files.json'),
      JSON.stringify([
        [join(tls, 'node.pem.join'), join(tls, 'node.pem')],
        [join(tls, 'node-key.pem.join'), join(tls, 'node-key.pem')],
      ]),
    );
    await finishJoinFiles(join(tls, '..'));
    assert.equal(await readFile(join(tls, 'node.pem'), 'utf8'), 'new cert');
    assert.equal(await readFile(join(tls, 'node-key.pem'), 'utf8'), 'new key');
    assert.ok(!existsSync(join(tls, 'join-files.json')));
    await finishJoinFiles(join(tls, '..')); // nothing to do
  });
});
