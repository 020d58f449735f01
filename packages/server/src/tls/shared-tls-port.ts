import type { Server as HttpsServer } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { MAX_FIRST_RECORD_BYTES, readFirstRecord } from './client-hello.ts';

/**
 * Takes a connection whose ClientHello it routes away from Node's TLS: the socket (paused) and
 * every byte already read of it, which the taker's TLS end must read first.
 */
export type TlsConnectionTaker = (socket: Socket, peeked: Buffer) => void;

/**
 * The TLS port as a plain TCP listener that looks at each connection's first TLS record: a
 * ClientHello that `route` claims by its ALPN protocols goes, with its bytes, to the taker
 * `route` returns; anything else (other ALPNs, no ALPN, not a ClientHello) gets its bytes put
 * back and goes to `https` as a connection of its own, which serves it as if it had accepted it.
 * A first record not whole after MAX_FIRST_RECORD_BYTES is a plain "other"; one not whole
 * within `firstRecordTimeoutMs` closes the connection (a client that trickles its hello holds
 * nothing but its socket for that long).
 */
export function createSharedTlsPort(o: {
  readonly https: HttpsServer;
  readonly route: (alpn: readonly string[]) => TlsConnectionTaker | undefined;
  readonly firstRecordTimeoutMs: number;
}): Server {
  return createServer({ pauseOnConnect: false }, (socket) => {
    socket.on('error', () => {}); // whoever takes the socket sees its failures
    let peeked: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), o.firstRecordTimeoutMs);
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
    };
    const onClose = () => clearTimeout(timer);
    const onData = (chunk: Buffer) => {
      peeked = peeked.length === 0 ? chunk : Buffer.concat([peeked, chunk]);
      const first = readFirstRecord(peeked.subarray(0, MAX_FIRST_RECORD_BYTES));
      if (first.kind === 'more' && peeked.length < MAX_FIRST_RECORD_BYTES) return;
      done();
      const taker = first.kind === 'hello' ? o.route(first.alpn) : undefined;
      if (taker) {
        taker(socket, peeked);
        return;
      }
      socket.unshift(peeked);
      o.https.emit('connection', socket);
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
