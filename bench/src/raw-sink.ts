/**
 * The receiving end of the raw reference of P4 and P5: a tiny HTTP server that pipes the body of
 * each PUT or POST into `btrfs receive -e <dir>` and answers 200 with
 * `{"bytes":<body bytes>,"cipher":…,"protocol":…}` once receive exited 0 (500 with receive's
 * stderr otherwise). It runs inside the peer's network namespace (`host.spawn(process.execPath,
 * [this file, ...])`), so `curl -T- http://<peer>/sink` from the other namespace is the
 * `send | curl | receive` pipe of targets.md. Given a certificate and key it serves HTTPS with
 * Node's TLS (as dotmesh-server does), and reports the cipher and protocol each request used.
 *
 * Usage: node raw-sink.ts <address> <port> <dir> [<cert.pem> <key.pem>]
 * Prints one line `{"listening":"<address>:<port>"}` on stdout once it accepts connections.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';

const [address, portText, dir, certFile, keyFile] = process.argv.slice(2);
if (!address || !portText || !dir) {
  console.error('usage: node raw-sink.ts <address> <port> <dir> [<cert.pem> <key.pem>]');
  process.exit(2);
}

const sink = (req: IncomingMessage, res: ServerResponse) => {
  if (req.method !== 'PUT' && req.method !== 'POST') {
    res.writeHead(405, { 'content-type': 'text/plain' }).end('PUT or POST a btrfs send stream\n');
    req.resume();
    return;
  }
  const child = spawn('btrfs', ['receive', '-e', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
  let bytes = 0;
  let stderr = '';
  req.on('data', (c: Buffer) => {
    bytes += c.length;
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-4000);
  });
  child.stdin.on('error', () => {}); // EPIPE when receive stops first: its exit code says why
  req.pipe(child.stdin);
  const bodyDone = new Promise<void>((resolve) => {
    req.once('end', resolve);
    req.once('close', resolve);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (e) => {
      stderr += String(e);
      resolve(null);
    });
  });
  void exited.then((code) => {
    // receive -e may stop at the end marker: drain whatever follows. Unpipe first: the pipe would
    // otherwise pause req again when stdin closes after this, and 'end' would never come.
    req.unpipe(child.stdin);
    req.resume();
    return bodyDone.then(() => {
      const tls = 'getCipher' in req.socket ? (req.socket as TLSSocket) : undefined;
      const answer = { bytes, cipher: tls?.getCipher().standardName ?? null, protocol: tls?.getProtocol() ?? null };
      if (code === 0) res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(answer)}\n`);
      else res.writeHead(500, { 'content-type': 'text/plain' }).end(`btrfs receive exited ${code}: ${stderr.trim()}\n`);
    });
  });
};
const server =
  certFile && keyFile ? createTlsServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, sink) : createServer(sink);
server.listen(Number(portText), address, () => {
  process.stdout.write(`${JSON.stringify({ listening: `${address}:${portText}` })}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
