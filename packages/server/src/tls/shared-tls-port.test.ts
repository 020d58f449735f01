import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer, get as httpsGet } from 'node:https';
import { type AddressInfo, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { makeTempDir, makeTestCa } from '@dotmesh/testkit';
import { DataConnections, dataAlpn } from '@dotmesh/transfer';
import { SILENT_LOGGER } from '../log.ts';
import { readFirstRecord } from './client-hello.ts';
import { dataConnectionRoute } from './data-connection-route.ts';
import { createSharedTlsPort } from './shared-tls-port.ts';

const FIRST_RECORD_MS = 400;

describe('the TLS port shared by the HTTPS API and the data connections', () => {
  let dir: string;
  let ca: string;
  let port: number;
  let listener: Server;
  const https = createHttpsServer({}, (_req, res) => res.end('api answers'));
  const registry = new DataConnections({ identity: { certFile: 'unused', keyFile: 'unused' } });

  before(async () => {
    dir = await makeTempDir('shared-tls');
    const testCa = await makeTestCa(dir, 'ca');
    const leaf = await testCa.sign('server', '/CN=server', 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
    https.setSecureContext({ cert: await readFile(leaf.cert), key: await readFile(leaf.key) });
    ca = await readFile(testCa.caCert, 'utf8');
    listener = createSharedTlsPort({
      https,
      route: dataConnectionRoute(registry, SILENT_LOGGER),
      firstRecordTimeoutMs: FIRST_RECORD_MS,
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    port = (listener.address() as AddressInfo).port;
  });
  after(async () => {
    listener.close();
    https.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  });

  /** An HTTPS request through the shared port: the API answers. */
  const apiAnswers = () =>
    new Promise<string>((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port, path: '/', ca, agent: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });

  /** A TLS client offering `alpn`; resolves once the connection ended, with how ('closed': before any handshake answer). */
  const dial = (alpn: string[]) =>
    new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, ALPNProtocols: alpn });
      s.once('secureConnect', () => {
        s.destroy();
        resolve('handshake done');
      });
      s.once('error', (e) =>
        resolve(/disconnected before secure TLS connection was established/.test(e.message) ? 'closed' : `error: ${e.message}`),
      );
      s.once('close', () => resolve('closed'));
    });

  /** A raw TCP connection; resolves with how long the server took to close it. */
  const closedAfter = async (send: (s: Socket) => void) => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    await once(s, 'connect');
    const t0 = Date.now();
    send(s);
    s.resume();
    await once(s, 'close');
    return Date.now() - t0;
  };

  test('HTTPS requests are served through it as before', async () => {
    assert.equal(await apiAnswers(), 'api answers');
    assert.equal(await dial(['http/1.1']), 'handshake done');
    assert.equal(await dial([]), 'handshake done');
  });

  test('a hello naming a waiting stream goes, with its bytes, to that stream only; once', async () => {
    const waiting = registry.expect(5000);
    const client = tlsConnect({ host: '127.0.0.1', port, ca, ALPNProtocols: [dataAlpn(waiting.id)] });
    client.on('error', () => {});
    const { socket, tls } = await waiting.connection;
    assert.deepEqual(readFirstRecord(tls.peeked ?? Buffer.alloc(0)), { kind: 'hello', alpn: [dataAlpn(waiting.id)] });
    assert.ok(tls.streamKey.equals(waiting.key));
    assert.equal(socket.isPaused(), true, 'nobody reads it until the pump does');
    client.destroy();
    socket.destroy();
    // the same stream id again: refused at once, never Node's
    assert.equal(await dial([dataAlpn(waiting.id)]), 'closed');
    assert.equal(registry.taken, 1);
    assert.equal(await apiAnswers(), 'api answers');
  });

  test('a hello naming a made-up stream is closed at once; the API on the same port still answers', async () => {
    assert.equal(await dial([dataAlpn('0123456789abcdef0123456789abcdef')]), 'closed');
    assert.equal(await dial([dataAlpn('not-even-an-id')]), 'closed');
    assert.equal(await apiAnswers(), 'api answers');
  });

  test('a first record that trickles in is cut after the deadline; garbage goes to Node, which refuses it', async () => {
    const slow = await closedAfter((s) => s.write(Buffer.from([22, 3, 1, 0x02])));
    assert.ok(slow >= FIRST_RECORD_MS - 50 && slow < FIRST_RECORD_MS + 2000, `closed after ${slow} ms`);
    const garbage = await closedAfter((s) => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    assert.ok(garbage < FIRST_RECORD_MS, `garbage closed by Node's TLS after ${garbage} ms`);
    // a record header that announces more than a record may hold: not a hello, Node's to refuse
    const oversized = await closedAfter((s) => s.write(Buffer.concat([Buffer.from([22, 3, 1, 0x40, 0x01]), Buffer.alloc(64)])));
    assert.ok(oversized < FIRST_RECORD_MS, `oversized closed after ${oversized} ms`);
    assert.equal(await apiAnswers(), 'api answers');
  });
});
