import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { issuerPin } from '@dotmesh/rpc/tls';
import { createExec } from '@dotmesh/storage';
import { MemoryStore } from '@dotmesh/store';
import { Cleanup, makeTempDir } from '@dotmesh/testkit';
import { caPublicKeyHash, ensureClusterPki, makeKeyAndCsr, signCsr } from '../tls/pki.ts';
import { parseJoinRequest } from './join-issuer.ts';
import { JoinTokens, joinTokenId } from './join-tokens.ts';
import { KEYS } from './store-keys.ts';

describe('join tokens', () => {
  test('the store holds a verifier, never the secret; a single-use token joins once, then is used up', async () => {
    const store = await MemoryStore.open();
    const tokens = new JoinTokens(store);
    const { token, info } = await tokens.create({ ttlSeconds: 3600, uses: 1, description: 'node 2' });
    assert.match(token, /^[a-z0-9]{6}\.[a-z0-9]{32}$/);
    const [id, secret] = token.split('.') as [string, string];
    assert.equal(info.Id, id);
    assert.equal(joinTokenId(token), id);
    const { kvs } = await store.range('');
    assert.equal(kvs.length, 1);
    assert.equal(kvs[0]!.key, KEYS.joinToken(id));
    assert.ok(!kvs[0]!.value.includes(secret), 'no secret in the store');
    await tokens.check(token);
    await tokens.use(token);
    await assert.rejects(tokens.use(token), { code: 'UNAUTHENTICATED', message: `join token ${id} is used up` });
    assert.deepEqual(await tokens.list(), [], 'a used-up token is not listed');
    await store.close();
  });

  test('a wrong secret, an unknown id, a malformed token and an expired one are refused without the secret in the error', async () => {
    const store = await MemoryStore.open();
    let now = new Date('2026-01-01T00:00:00Z');
    const tokens = new JoinTokens(store, () => now);
    const { token } = await tokens.create({ ttlSeconds: 60, uses: 0, description: '' });
    const [id, secret] = token.split('.') as [string, string];
    const wrong = `${id}.${'0'.repeat(32)}`;
    await assert.rejects(tokens.use(wrong), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'UNAUTHENTICATED');
      assert.match(e.message, new RegExp(`join token ${id} is unknown`));
      return true;
    });
    await assert.rejects(tokens.use(`zzzzzz.${secret}`), (e: Error) => !e.message.includes(secret));
    await assert.rejects(tokens.use('not-a-token'), { code: 'UNAUTHENTICATED', message: 'the join token is malformed' });
    await tokens.use(token);
    await tokens.use(token);
    assert.equal((await tokens.list())[0]?.UsesLeft, null, 'unlimited uses');
    now = new Date('2026-01-01T00:01:00Z');
    await assert.rejects(tokens.use(token), {
      code: 'UNAUTHENTICATED',
      message: `join token ${id} expired at 2026-01-01T00:01:00.000Z`,
    });
    assert.deepEqual((await store.range(KEYS.joinTokensPrefix)).kvs, [], 'an expired token is deleted');
    await store.close();
  });

  test('two joins racing for the last use: exactly one wins', async () => {
    const store = await MemoryStore.open();
    const tokens = new JoinTokens(store);
    const { token } = await tokens.create({ ttlSeconds: 60, uses: 1, description: '' });
    const results = await Promise.allSettled([tokens.use(token), tokens.use(token), tokens.use(token)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    await store.close();
  });

  test('bad TTLs and use counts are refused', async () => {
    const store = await MemoryStore.open();
    const tokens = new JoinTokens(store);
    await assert.rejects(tokens.create({ ttlSeconds: 0, uses: 1, description: '' }), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(tokens.create({ ttlSeconds: 60, uses: -1, description: '' }), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(tokens.delete('../x'), { code: 'INVALID_ARGUMENT' });
    assert.equal(await tokens.delete('abcdef'), false);
    await store.close();
  });
});

describe('join requests and certificates', () => {
  test('a request is validated field by field', () => {
    const csr = '-----BEGIN CERTIFICATE REQUEST-----\nx\n-----END CERTIFICATE REQUEST-----\n';
    const ok = { Token: 't', NodeId: 'abc123', NodeCsr: csr, Addresses: ['10.0.0.2'], HttpsCsr: null, HttpsNames: [] };
    assert.equal(parseJoinRequest(JSON.stringify(ok)).NodeId, 'abc123');
    assert.equal(parseJoinRequest(JSON.stringify(ok)).EtcdCsr, null, 'a joiner of before managed etcd sends no etcd request');
    assert.equal(parseJoinRequest(JSON.stringify({ ...ok, EtcdCsr: csr })).EtcdCsr, csr);
    for (const [bad, why] of [
      ['nope', /not JSON/],
      [JSON.stringify({ ...ok, NodeId: '../etc' }), /NodeId/],
      [JSON.stringify({ ...ok, NodeCsr: 'x' }), /NodeCsr must be a PEM certificate request/],
      [JSON.stringify({ ...ok, Addresses: ['not-an-ip'] }), /Addresses/],
      [JSON.stringify({ ...ok, Addresses: [] }), /Addresses must name/],
      [JSON.stringify({ ...ok, HttpsNames: ['a b'] }), /HttpsNames/],
      [JSON.stringify({ ...ok, EtcdCsr: 'x' }), /EtcdCsr must be a PEM certificate request/],
    ] as const) {
      assert.throws(
        () => parseJoinRequest(bad),
        (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && why.test(e.message),
      );
    }
  });

  test('a signed request gets the CN and SANs the issuer sets, whatever the request asked for', async () => {
    const cleanup = new Cleanup();
    try {
      const exec = createExec();
      const cluster = await makeTempDir('join-ca', cleanup);
      const joiner = await makeTempDir('joiner', cleanup);
      const pki = await ensureClusterPki({ stateDir: cluster, exec, subjectAltNames: ['127.0.0.1'] });
      const ca = new X509Certificate(await readFile(pki.caCert));
      assert.match(caPublicKeyHash(ca), /^sha256:[0-9a-f]{64}$/);
      const csr = await makeKeyAndCsr(exec, join(joiner, 'key.pem'), 'someone-else');
      const pem = await signCsr(exec, cluster, {
        csrPem: csr,
        cn: 'node-2',
        names: ['10.0.0.2'],
        usage: 'serverAuth,clientAuth',
      });
      const cert = new X509Certificate(pem);
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
      assert.ok(cert.subject.split('\n').includes('CN=node-2'));
      assert.equal(cert.subjectAltName, 'IP Address:10.0.0.2');
      const tampered = csr.replace(/[A-Za-z](?=[A-Za-z0-9+/=]*\n-----END)/, (c) => (c === 'A' ? 'B' : 'A'));
      await assert.rejects(signCsr(exec, cluster, { csrPem: tampered, cn: 'x', names: [], usage: 'serverAuth' }), {
        code: 'INVALID_ARGUMENT',
      });
    } finally {
      await cleanup.run();
    }
  });
});

describe('the CA pin of a certificate chain', () => {
  test("issuerPin is the CA's pin only when that CA issued and signed the leaf", async () => {
    const cleanup = new Cleanup();
    try {
      const exec = createExec();
      const a = await ensureClusterPki({ stateDir: await makeTempDir('pin-a', cleanup), exec, subjectAltNames: ['127.0.0.1'] });
      const b = await ensureClusterPki({ stateDir: await makeTempDir('pin-b', cleanup), exec, subjectAltNames: ['127.0.0.1'] });
      const [leafA, caA, caB] = await Promise.all(
        [a.cert, a.caCert, b.caCert].map(async (f) => new X509Certificate(await readFile(f))),
      );
      assert.equal(issuerPin(leafA!.raw, caA!.raw), caPublicKeyHash(caA!));
      assert.equal(issuerPin(leafA!.raw, caB!.raw), null, 'another CA');
      assert.equal(issuerPin(leafA!.raw, leafA!.raw), null, 'the leaf itself');
      assert.equal(issuerPin(leafA!.raw, undefined), null, 'no CA sent');
    } finally {
      await cleanup.run();
    }
  });
});
