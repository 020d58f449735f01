import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

/** Two ends of one loopback TCP connection: `a` dialled, `b` accepted. */
export interface TcpPair {
  readonly a: Socket;
  readonly b: Socket;
  /** Destroys both ends. */
  close(): void;
}

/**
 * A connected loopback TCP pair on a free port (the listener is closed once `b` is accepted).
 * Errors on either end are ignored: the test looks at what its code under test reports.
 */
export async function tcpPair(): Promise<TcpPair> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const a = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(a, 'connect');
  const b = await accepted;
  server.close();
  for (const s of [a, b]) s.on('error', () => {});
  return {
    a,
    b,
    close: () => {
      a.destroy();
      b.destroy();
    },
  };
}
