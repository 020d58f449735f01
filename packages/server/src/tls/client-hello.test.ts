import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { MAX_FIRST_RECORD_BYTES, readFirstRecord } from './client-hello.ts';

/** The first record Node's TLS client sends when offering `alpn` (its real ClientHello). */
async function clientHello(alpn: string[] | undefined): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = tlsConnect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      ...(alpn ? { ALPNProtocols: alpn } : {}),
      rejectUnauthorized: false,
    });
    client.on('error', () => {});
    const [socket] = await accepted;
    let bytes = Buffer.alloc(0);
    while (bytes.length < 5 || bytes.length < 5 + bytes.readUInt16BE(3)) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      bytes = Buffer.concat([bytes, chunk]);
    }
    client.destroy();
    socket.destroy();
    return bytes;
  } finally {
    server.close();
  }
}

describe('readFirstRecord: the ALPN protocols of a ClientHello', () => {
  test('a real ClientHello with one ALPN protocol gives it; with two, both in order; with none, an empty list', async () => {
    assert.deepEqual(readFirstRecord(await clientHello(['dotmesh-commit-stream/1:abc'])), {
      kind: 'hello',
      alpn: ['dotmesh-commit-stream/1:abc'],
    });
    assert.deepEqual(readFirstRecord(await clientHello(['h2', 'http/1.1'])), { kind: 'hello', alpn: ['h2', 'http/1.1'] });
    assert.deepEqual(readFirstRecord(await clientHello(undefined)), { kind: 'hello', alpn: [] });
  });

  test('every prefix of a ClientHello asks for more; the whole one, fed at once, is read', async () => {
    const hello = await clientHello(['x']);
    for (let n = 0; n < hello.length; n++)
      assert.deepEqual(readFirstRecord(hello.subarray(0, n)), { kind: 'more' }, `${n} bytes`);
    assert.equal(readFirstRecord(hello).kind, 'hello');
  });

  test('bytes after the first record are ignored', async () => {
    const hello = await clientHello(['x']);
    assert.deepEqual(readFirstRecord(Buffer.concat([hello, Buffer.from('more bytes')])), { kind: 'hello', alpn: ['x'] });
  });

  test('plain HTTP, another record type, another major version, an empty or oversized record: not a hello', () => {
    for (const bytes of [
      Buffer.from('GET / HTTP/1.1\r\n'),
      Buffer.from([23, 3, 3, 0, 5, 1, 2, 3, 4, 5]),
      Buffer.from([22, 2, 0, 0, 5]),
      Buffer.from([22, 3, 1, 0, 0]),
      Buffer.from([22, 3, 1, 0x40, 0x01]), // 16385 bytes: more than a record may hold
    ]) {
      assert.deepEqual(readFirstRecord(bytes), { kind: 'other' }, bytes.toString('hex'));
    }
    assert.equal(MAX_FIRST_RECORD_BYTES, 16389);
  });

  test('a ClientHello whose inner lengths lie is not a hello (never a throw, never a read past the record)', async () => {
    const hello = await clientHello(['dotmesh-commit-stream/1:abc']);
    // every single byte of the hello changed to 0xff and to 0x00 in turn: the parser answers, and
    // a length that now overruns its container gives `other`
    for (let i = 5; i < hello.length; i++) {
      for (const v of [0x00, 0xff]) {
        const bent = Buffer.from(hello);
        bent[i] = v;
        const r = readFirstRecord(bent);
        assert.ok(['hello', 'other'].includes(r.kind), `byte ${i} = ${v}: ${r.kind}`);
      }
    }
    // the handshake length larger than the record
    const long = Buffer.from(hello);
    long.writeUIntBE(hello.length, 6, 3);
    assert.deepEqual(readFirstRecord(long), { kind: 'other' });
    // not a ClientHello (ServerHello type)
    const other = Buffer.from(hello);
    other[5] = 2;
    assert.deepEqual(readFirstRecord(other), { kind: 'other' });
  });

  test('hand-made hellos: a duplicate ALPN extension, an empty protocol name, an empty list are refused; no extensions is none', () => {
    const hello = (extensions: Buffer | undefined, tail = Buffer.alloc(0)) => {
      const body = Buffer.concat([
        Buffer.from([3, 3]),
        Buffer.alloc(32),
        Buffer.from([0]), // session id
        Buffer.from([0, 2, 0x13, 0x01]), // one cipher suite
        Buffer.from([1, 0]), // compression: null
        ...(extensions ? [u16(extensions.length), extensions] : []),
        tail,
      ]);
      const handshake = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
      return Buffer.concat([Buffer.from([22, 3, 1]), u16(handshake.length), handshake]);
    };
    const alpnExt = (names: string[]) => {
      const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n, 'latin1')])));
      const data = Buffer.concat([u16(list.length), list]);
      return Buffer.concat([u16(16), u16(data.length), data]);
    };
    assert.deepEqual(readFirstRecord(hello(alpnExt(['a', 'bc']))), { kind: 'hello', alpn: ['a', 'bc'] });
    assert.deepEqual(readFirstRecord(hello(undefined)), { kind: 'hello', alpn: [] });
    assert.deepEqual(readFirstRecord(hello(Buffer.concat([alpnExt(['a']), alpnExt(['b'])]))), { kind: 'other' });
    assert.deepEqual(readFirstRecord(hello(alpnExt(['a', '']))), { kind: 'other' });
    assert.deepEqual(readFirstRecord(hello(alpnExt([]))), { kind: 'other' });
    // an extension whose length runs past the extensions block
    assert.deepEqual(readFirstRecord(hello(Buffer.from([0, 16, 0, 50, 0, 1]))), { kind: 'other' });
    // bytes after the extensions block, inside the hello
    assert.deepEqual(readFirstRecord(hello(alpnExt(['a']), Buffer.from([0]))), { kind: 'other' });
  });
});

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u24(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(n, 0, 3);
  return b;
}
