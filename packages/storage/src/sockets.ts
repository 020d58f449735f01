import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';

/** A connected TCP socket (not TLS) with nothing buffered: another process may read or write it. */
export function isPlainSocket(s: Duplex): s is Socket {
  return s instanceof Socket && !(s instanceof TLSSocket) && !s.destroyed && s.readableLength === 0;
}

/**
 * Calls `onIdle` once no byte was read from `socket` for `idleMs` (writes do not count, unlike
 * `socket.setTimeout`: a side that sends keep-alives still notices a silent peer). Watches by
 * listening to 'data' (pause the socket first if nothing reads it yet: the listener does not
 * resume a paused socket). Returns a stop function; stops by itself when the socket closes.
 */
export function watchReads(socket: Duplex, idleMs: number, onIdle: () => void): () => void {
  let last = performance.now();
  const onData = () => {
    last = performance.now();
  };
  const timer = setInterval(
    () => {
      if (performance.now() - last < idleMs) return;
      stop();
      onIdle();
    },
    Math.max(50, Math.min(1000, idleMs / 4)),
  );
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    socket.off('data', onData);
  };
  socket.prependListener('data', onData);
  socket.once('close', stop);
  return stop;
}
