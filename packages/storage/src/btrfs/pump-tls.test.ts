import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tls from 'node:tls';
import { type DotmeshError, isDotmeshError } from '@dotmesh/core';
import { makeTempDir, makeTestCa, pumpBinary, skipUnless, type TestCa, tcpPair } from '@dotmesh/testkit';
import { readAll } from '../conformance-util.ts';
import type { StreamTlsClient, StreamTlsServer } from '../driver.ts';
import { createExec } from '../exec.ts';
import { BtrfsCli } from './btrfs-cli.ts';
import { BtrfsDriver } from './btrfs-driver.ts';
import { destroyPool, type OpenedPool, openPool } from './pool.ts';
import { ensurePoolFile } from './pool-format.ts';
import { purge } from './recovery.ts';

const exec = createExec();
const ALPN = 'dotmesh-commit-stream';
const CIPHER = 'TLS_AES_256_GCM_SHA384';

/** Our CA, a server certificate (127.0.0.1) sent with it, a client certificate, and an impostor of another CA. */
async function makePki(dir: string) {
  const newCa = async (n: string) => {
    await mkdir(join(dir, n));
    return makeTestCa(join(dir, n), n);
  };
  const ours = await newCa('ca');
  const other = await newCa('other-ca');
  /** A leaf of `ca`, and a chain file (the leaf, then the CA) as a server sends it. */
  const leaf = async (ca: TestCa, name: string, ext: string) => {
    const signed = await ca.sign(name, `/CN=${name}`, `${ext}\nbasicConstraints=CA:FALSE\n`);
    const chain = join(ca.dir, `${name}-chain.pem`);
    await writeFile(chain, Buffer.concat([await readFile(signed.cert), await readFile(ca.caCert)]));
    const fingerprint = new X509Certificate(await readFile(signed.cert)).fingerprint256;
    return { certFile: chain, keyFile: signed.key, fingerprint };
  };
  const caPin = async (ca: TestCa) => {
    const der = new X509Certificate(await readFile(ca.caCert)).publicKey.export({ type: 'spki', format: 'der' });
    return `sha256:${createHash('sha256').update(der).digest('hex')}`;
  };
  const server = await leaf(ours, 'server', 'subjectAltName=IP:127.0.0.1');
  const client = await leaf(ours, 'client', 'subjectAltName=DNS:client');
  const impostor = await leaf(other, 'impostor', 'subjectAltName=IP:127.0.0.1');
  return {
    caFile: ours.caCert,
    server,
    client,
    impostor,
    serverPin: server.fingerprint,
    impostorPin: impostor.fingerprint,
    caPin: await caPin(ours),
    otherCaPin: await caPin(other),
  };
}

/** The DotmeshError `p` fails with, which must have `code`. */
async function failsWith(p: Promise<unknown>, code: string): Promise<DotmeshError> {
  const e = await p.then(
    () => assert.fail(`expected ${code}, but it succeeded`),
    (err: unknown) => err,
  );
  assert.ok(isDotmeshError(e), `expected DotmeshError ${code}, got ${String(e)}`);
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
  return e;
}

/** Pids of live processes whose command line mentions `marker`. */
async function processesWith(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const p of await readdir('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(marker)) pids.push(Number(p));
  }
  return pids;
}

describe('commit streams over TLS spoken by dotmesh-pump', { skip: skipUnless(['root', 'btrfs', 'losetup']) }, () => {
  let base = '';
  const pools: { poolFile: string; mountPoint: string }[] = [];
  let pki: Awaited<ReturnType<typeof makePki>>;
  let src: BtrfsDriver;
  let dst: BtrfsDriver;
  const big = randomBytes(3 * 1024 * 1024 + 17);

  const driverOn = async (name: string) => {
    const p = { poolFile: join(base, `${name}.img`), mountPoint: join(base, name) };
    pools.push(p);
    const opened: OpenedPool = await openPool({ ...p, sizeBytes: 300 * 1024 * 1024, sparse: true, exec });
    const root = join(opened.root, 'r');
    await mkdir(root);
    await ensurePoolFile(root);
    const d = new BtrfsDriver({ root, exec, pump: { binary: await pumpBinary() } });
    await d.open();
    return d;
  };

  before(async () => {
    base = await makeTempDir('pump-tls');
    await mkdir(join(base, 'pki'));
    pki = await makePki(join(base, 'pki'));
    src = await driverOn('a');
    dst = await driverOn('b');
    await src.createVolume('v', {});
    await writeFile(join(src.volumePath('v'), 'big'), big);
    await src.commit('v', 'c1', { n: 1 });
    for (const [i, c] of ['c2', 'c3'].entries()) {
      await writeFile(join(src.volumePath('v'), 'small'), c);
      await src.commit('v', c, { n: i + 2 });
    }
    // a commit of its own for the tests that receive outside the first test's volume (a commit is received once per pool)
    await src.createVolume('u', {});
    await writeFile(join(src.volumePath('u'), 'f'), 'u');
    await src.commit('u', 'd1', {});
  });
  after(async () => {
    const cli = new BtrfsCli(exec);
    for (const d of [src, dst]) if (d) await purge(cli, d.layout.root).catch(() => {});
    for (const p of pools.reverse()) await destroyPool({ ...p, exec }).catch((e) => console.error(e));
    if (base) await rm(base, { recursive: true, force: true });
  });

  const key = () => randomBytes(32);
  const client = (k: Buffer, over: Partial<StreamTlsClient> = {}): StreamTlsClient => ({
    role: 'client',
    serverName: '127.0.0.1',
    trust: { certSha256: pki.serverPin },
    alpn: ALPN,
    streamKey: k,
    ...over,
  });
  const server = (k: Buffer, over: Partial<StreamTlsServer> = {}): StreamTlsServer => ({
    role: 'server',
    identity: pki.server,
    alpn: ALPN,
    streamKey: k,
    ...over,
  });
  /** The first bytes the client sends (its ClientHello), read by Node as a listener that looks at ALPN would. */
  const peek = async (s: Socket) => {
    const [chunk] = (await once(s, 'data')) as [Buffer];
    s.pause();
    return chunk;
  };

  test('commits cross between two pumps over TLS 1.3 (pinned certificate, pinned cluster CA, CA file; mutual TLS); Node reads and writes none of it', async () => {
    const ways: [string, string | undefined, Partial<StreamTlsClient>, Partial<StreamTlsServer>][] = [
      ['c1', undefined, {}, {}],
      ['c2', 'c1', { trust: { caPin: pki.caPin }, identity: pki.client }, { clientCaFile: pki.caFile }],
      ['c3', 'c2', { trust: { caFile: pki.caFile } }, {}],
    ];
    await dst.createVolume('w', {});
    for (const [commitId, parent, c, s] of ways) {
      const { a, b, close } = await tcpPair();
      try {
        const k = key();
        const sent = src.exportCommitTo('v', commitId, a, {
          idleTimeoutMs: 5000,
          tls: client(k, c),
          ...(parent ? { parent: { volumeId: 'v', commitId: parent } } : {}),
        });
        const peeked = await peek(b);
        const [info] = await Promise.all([
          dst.importCommitFrom('w', b, {
            idleTimeoutMs: 5000,
            onReady: () => {},
            tls: server(k, { ...s, peeked }),
            ...(parent ? { parent: { volumeId: 'w', commitId: parent } } : {}),
          }),
          sent,
        ]);
        assert.equal(info.id, commitId);
        assert.equal(a.bytesWritten + a.bytesRead, 0, 'the sending Node moved no byte');
        assert.equal(b.bytesRead, peeked.length, 'the receiving Node read only the ClientHello');
        assert.equal(peeked[0], 0x16, 'a TLS handshake record');
      } finally {
        close();
      }
    }
    assert.deepEqual(
      (await dst.listCommits('w')).map((c) => c.id),
      ['c1', 'c2', 'c3'],
    );
    assert.ok((await readFile(join(dst.commitPath('w', 'c3'), 'big'))).equals(big));
    assert.equal(await readFile(join(dst.commitPath('w', 'c3'), 'small'), 'utf8'), 'c3');
  });

  test("the pumps speak standard TLS: a Node TLS server reads the key and the stream; a Node TLS client's stream is received", async () => {
    const k = key();
    const whole = await readAll(src.exportCommit('u', 'd1'));
    // the sending pump against Node's TLS server
    const got: Buffer[] = [];
    const nodeServer = tls.createServer({
      cert: await readFile(pki.server.certFile),
      key: await readFile(pki.server.keyFile),
      ALPNProtocols: [ALPN],
    });
    const seen = new Promise<{ cipher: string; protocol: string | null; alpn: string | false | null }>((resolve) =>
      nodeServer.once('secureConnection', (s: tls.TLSSocket) => {
        s.on('data', (d: Buffer) => got.push(d));
        s.on('error', () => {});
        resolve({ cipher: s.getCipher().standardName, protocol: s.getProtocol(), alpn: s.alpnProtocol });
      }),
    );
    await new Promise<void>((r) => nodeServer.listen(0, '127.0.0.1', r));
    const a = connect((nodeServer.address() as AddressInfo).port, '127.0.0.1');
    await once(a, 'connect');
    try {
      await src.exportCommitTo('u', 'd1', a, { idleTimeoutMs: 5000, tls: client(k) });
      assert.deepEqual(await seen, { cipher: CIPHER, protocol: 'TLSv1.3', alpn: ALPN });
      await new Promise((r) => setTimeout(r, 200));
      const all = Buffer.concat(got);
      assert.ok(all.subarray(0, 32).equals(k), 'the stream key first');
      assert.ok(all.subarray(32).equals(whole), 'then exactly the framed stream');
    } finally {
      a.destroy();
      nodeServer.close();
    }
    // a Node TLS client into the receiving pump
    await dst.createVolume('x', {});
    const { a: a2, b, close } = await tcpPair();
    try {
      const received = dst.importCommitFrom('x', b, { idleTimeoutMs: 5000, onReady: () => {}, tls: server(k) });
      const t = tls.connect({
        socket: a2,
        ca: await readFile(pki.caFile),
        servername: '',
        ALPNProtocols: [ALPN],
        checkServerIdentity: () => undefined,
      });
      t.on('error', () => {});
      await once(t, 'secureConnect');
      t.write(k);
      t.write(whole);
      assert.equal((await received).id, 'd1');
      assert.equal(await readFile(join(dst.commitPath('x', 'd1'), 'f'), 'utf8'), 'u');
      t.destroy();
    } finally {
      close();
    }
  });

  test('the sending pump refuses an untrusted server before any byte of the stream: wrong pin, wrong cluster CA, an impostor of another CA', async () => {
    const cases: [Partial<StreamTlsClient>, { certFile: string; keyFile: string }, RegExp][] = [
      [{ trust: { certSha256: pki.impostorPin } }, pki.server, /not the pinned one/],
      [{ trust: { caPin: pki.otherCaPin } }, pki.server, /not issued by the pinned cluster CA/],
      [{ trust: { caFile: pki.caFile } }, pki.impostor, /not trusted/],
      [{ trust: { caPin: pki.caPin } }, pki.impostor, /not issued by the pinned cluster CA/],
    ];
    for (const [c, identity, message] of cases) {
      let appBytes = 0;
      const nodeServer = tls.createServer({
        cert: await readFile(identity.certFile),
        key: await readFile(identity.keyFile),
        ALPNProtocols: [ALPN],
      });
      nodeServer.on('secureConnection', (s: tls.TLSSocket) => {
        s.on('data', (d: Buffer) => (appBytes += d.length));
        s.on('error', () => {});
      });
      nodeServer.on('tlsClientError', () => {});
      await new Promise<void>((r) => nodeServer.listen(0, '127.0.0.1', r));
      const a = connect((nodeServer.address() as AddressInfo).port, '127.0.0.1');
      a.on('error', () => {});
      await once(a, 'connect');
      try {
        const e = await failsWith(
          src.exportCommitTo('v', 'c1', a, { idleTimeoutMs: 5000, tls: client(key(), c) }),
          'PERMISSION_DENIED',
        );
        assert.match(e.message, message);
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(appBytes, 0, 'no byte of the key or the stream reached it');
      } finally {
        a.destroy();
        nodeServer.close();
      }
    }
  });

  test('the receiving pump refuses, before btrfs receive sees a byte: a wrong stream key, a client without the required certificate, another ALPN, a hostile ClientHello', async () => {
    await dst.createVolume('y', {});
    const k = key();
    const whole = await readAll(src.exportCommit('u', 'd1'));
    const nodeClient = async (
      o: { key: Buffer; cert?: { certFile: string; keyFile: string }; alpn?: string },
      s: Partial<StreamTlsServer>,
    ) => {
      const { a, b, close } = await tcpPair();
      try {
        const received = dst.importCommitFrom('y', b, { idleTimeoutMs: 5000, onReady: () => {}, tls: server(k, s) });
        const t = tls.connect({
          socket: a,
          ca: await readFile(pki.caFile),
          checkServerIdentity: () => undefined,
          ALPNProtocols: [o.alpn ?? ALPN],
          ...(o.cert ? { cert: await readFile(o.cert.certFile), key: await readFile(o.cert.keyFile) } : {}),
        });
        t.on('error', () => {});
        t.once('secureConnect', () => {
          t.write(o.key);
          t.write(whole);
        });
        return await failsWith(received, 'PERMISSION_DENIED');
      } finally {
        close();
      }
    };
    assert.match((await nodeClient({ key: key() }, {})).message, /wrong stream key/);
    assert.match((await nodeClient({ key: k }, { clientCaFile: pki.caFile })).message, /certificate/);
    assert.match((await nodeClient({ key: k, cert: pki.impostor }, { clientCaFile: pki.caFile })).message, /certificate/);
    assert.match((await nodeClient({ key: k, alpn: 'http/1.1' }, {})).message, /alert|application protocol|handshake/i);
    // hostile first bytes: HTTP text, an encrypted record before any handshake, ClientHellos
    // whose lengths lie, a record longer than TLS allows
    const hello = (body: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, body.length >> 8, body.length & 0xff]), body]);
    for (const [hostile, code] of [
      [Buffer.from('GET / HTTP/1.1\r\nhost: x\r\n\r\n'), 'PERMISSION_DENIED'],
      [Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40]), randomBytes(64)]), 'PERMISSION_DENIED'],
      [hello(Buffer.concat([Buffer.from([0x01, 0xff, 0xff, 0xff, 0x03, 0x03]), randomBytes(600)])), 'PERMISSION_DENIED'],
      [hello(Buffer.concat([Buffer.from([0x01, 0x00, 0x00, 0xfc, 0x03, 0x03]), Buffer.alloc(250, 0xff)])), 'PERMISSION_DENIED'],
      [Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), randomBytes(2000)]), 'PERMISSION_DENIED'],
    ] as const) {
      const { a, b, close } = await tcpPair();
      try {
        const started = Date.now();
        const received = dst.importCommitFrom('y', b, {
          idleTimeoutMs: 5000,
          onReady: () => {},
          tls: server(k, { handshakeTimeoutMs: 1500 }),
        });
        a.write(hostile);
        const e = await failsWith(received, code).catch((err: Error) => {
          throw new Error(`first bytes ${hostile.subarray(0, 12).toString('hex')}: ${err.message}`);
        });
        assert.match(e.message, /TLS handshake/);
        assert.ok(Date.now() - started < 6000, `${e.message} after ${Date.now() - started} ms`);
      } finally {
        close();
      }
    }
    assert.deepEqual(await dst.listCommits('y'), []);
    assert.deepEqual(await readdir(dst.layout.stagingDir).catch(() => []), []);
  });

  test('a peer that never finishes the handshake is dropped after the handshake timeout; no pump outlives it', async () => {
    await dst.createVolume('z', {});
    const marker = pki.server.certFile;
    // silent, and a trickle of a ClientHello (one byte every 100 ms: never idle, never done)
    for (const trickle of [false, true]) {
      const { a, b, close } = await tcpPair();
      let timer: NodeJS.Timeout | undefined;
      try {
        const started = Date.now();
        const received = dst.importCommitFrom('z', b, {
          idleTimeoutMs: 5000,
          onReady: () => {},
          tls: server(key(), { handshakeTimeoutMs: 800 }),
        });
        // a record header and a ClientHello header announcing 508 bytes, then its bytes one by one
        if (trickle) {
          a.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]));
          timer = setInterval(() => a.write(Buffer.from([0])), 100);
        }
        const e = await failsWith(received, 'UNAVAILABLE');
        assert.match(e.message, /TLS handshake/);
        const took = Date.now() - started;
        assert.ok(took >= 700 && took < 5000, `dropped after ${took} ms`);
        assert.deepEqual(await processesWith(marker), [], 'no pump left');
      } finally {
        clearInterval(timer);
        close();
      }
    }
    // the sending side: a server that accepts and never answers
    const { a, close } = await tcpPair();
    try {
      const e = await failsWith(
        src.exportCommitTo('u', 'd1', a, { idleTimeoutMs: 5000, tls: client(key(), { handshakeTimeoutMs: 800 }) }),
        'UNAVAILABLE',
      );
      assert.match(e.message, /TLS handshake/);
    } finally {
      close();
    }
    assert.deepEqual(await dst.listCommits('z'), []);
  });
});
