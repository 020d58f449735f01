import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { isDotmeshError } from '@dotmesh/core';
import { DataConnections, dataAlpn, dataLine, parseDataLine } from './data-connections.ts';

const IDENTITY = { identity: { certFile: '/x/chain.pem', keyFile: '/x/key.pem' }, handshakeTimeoutMs: 1000 };

describe('DataConnections: streams waiting for their data connection', () => {
  test('a stream gets a random id and a fresh 32-byte key; its connection comes with the server TLS the pump needs', async () => {
    const reg = new DataConnections(IDENTITY);
    const a = reg.expect(5000);
    const b = reg.expect(5000);
    assert.notEqual(a.id, b.id);
    assert.equal(a.key.length, 32);
    assert.ok(!a.key.equals(b.key));
    assert.equal(reg.waiting, 2);
    const socket = new Socket();
    const peeked = Buffer.from('hello bytes');
    reg.take([dataAlpn(a.id)])?.(socket, peeked);
    const c = await a.connection;
    assert.equal(c.socket, socket);
    assert.deepEqual(c.tls, { ...IDENTITY, role: 'server', alpn: dataAlpn(a.id), peeked, streamKey: a.key });
    assert.equal(reg.taken, 1);
    assert.equal(reg.waiting, 1);
    b.cancel();
    assert.equal(reg.waiting, 0);
  });

  test('single use: a second connection naming the same stream finds nothing', () => {
    const reg = new DataConnections(IDENTITY);
    const a = reg.expect(5000);
    assert.ok(reg.take([dataAlpn(a.id)]));
    assert.equal(reg.take([dataAlpn(a.id)]), undefined);
  });

  test('a stream whose connection does not come within the wait fails UNAVAILABLE and is forgotten', async () => {
    const reg = new DataConnections(IDENTITY);
    const a = reg.expect(50);
    await assert.rejects(
      a.connection,
      (e: unknown) => isDotmeshError(e) && e.code === 'UNAVAILABLE' && /did not arrive/.test(e.message),
    );
    assert.equal(reg.take([dataAlpn(a.id)]), undefined);
    assert.equal(reg.waiting, 0);
  });

  test('cancel: the wait ends, the id is refused, a connection already taken is closed', async () => {
    const reg = new DataConnections(IDENTITY);
    const a = reg.expect(5000);
    a.cancel();
    await assert.rejects(a.connection, (e: unknown) => isDotmeshError(e) && e.code === 'UNAVAILABLE');
    assert.equal(reg.take([dataAlpn(a.id)]), undefined);
    const b = reg.expect(5000);
    const socket = new Socket();
    reg.take([dataAlpn(b.id)])?.(socket, Buffer.alloc(0));
    await b.connection;
    b.cancel();
    assert.ok(socket.destroyed);
  });

  test('only a hello offering exactly one protocol that names a waiting stream is taken', () => {
    const reg = new DataConnections(IDENTITY);
    const a = reg.expect(5000);
    for (const alpn of [
      [],
      ['http/1.1'],
      [dataAlpn(a.id), 'http/1.1'],
      ['http/1.1', dataAlpn(a.id)],
      [dataAlpn(a.id.toUpperCase())],
      [`${dataAlpn(a.id)}0`],
      [dataAlpn('0'.repeat(32))],
      [`dotmesh-commit-stream/2:${a.id}`],
    ]) {
      assert.equal(reg.take(alpn), undefined, JSON.stringify(alpn));
    }
    assert.equal(reg.waiting, 1, 'still waiting after every refusal');
    assert.ok(DataConnections.claims([dataAlpn('made-up')]));
    assert.ok(!DataConnections.claims(['http/1.1']));
    a.cancel();
  });

  test('the receiver line carries id and key; a malformed line is none', () => {
    const reg = new DataConnections(IDENTITY);
    const a = reg.expect(5000);
    const parsed = parseDataLine(dataLine(a.id, a.key));
    assert.equal(parsed?.id, a.id);
    assert.ok(parsed?.key.equals(a.key));
    for (const bad of [
      '',
      `${a.id}:`,
      `${a.id}:${a.key.toString('hex').slice(2)}`,
      `${a.id} ${a.key.toString('hex')}`,
      `x${a.id}:${a.key.toString('hex')}`,
    ]) {
      assert.equal(parseDataLine(bad), undefined, bad);
    }
    a.cancel();
  });
});
