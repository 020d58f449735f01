import { createServer, type Server } from 'node:net';

function listen(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => resolve(srv));
  });
}

function close(srv: Server): Promise<void> {
  return new Promise((resolve) => srv.close(() => resolve()));
}

function portOf(srv: Server): number {
  const addr = srv.address();
  if (addr === null || typeof addr === 'string') throw new Error('server has no TCP address');
  return addr.port;
}

/**
 * A TCP port that was free on 127.0.0.1 a moment ago (the kernel picks it). Another process may
 * take it before the caller binds it; tests that can should listen on port 0 themselves.
 */
export async function freePort(): Promise<number> {
  const srv = await listen();
  const port = portOf(srv);
  await close(srv);
  return port;
}

/** `n` distinct free ports (all held open until every one is chosen). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) servers.push(await listen());
    return servers.map(portOf);
  } finally {
    await Promise.all(servers.map(close));
  }
}
