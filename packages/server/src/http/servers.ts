import { createServer, type Server } from 'node:http';
import type { Logger } from '../log.ts';

/**
 * The two listeners: the API port (POST /rpc; GET /check) and the liveness port (GET /check
 * → `OK`, no auth, for probes). Each returns a closer.
 */
export type RequestHandler = Parameters<typeof createServer>[1] & {};

export async function listen(server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function createApiServer(routes: { rpc: RequestHandler }, logger: Logger): Server {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/rpc') {
      Promise.resolve(routes.rpc(req, res)).catch((err: unknown) => {
        logger.error({ err }, 'unhandled error in /rpc');
        if (!res.headersSent) res.writeHead(500).end('internal error\n');
      });
      return;
    }
    if (path === '/check' && req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
  });
  server.requestTimeout = 10 * 60_000;
  server.headersTimeout = 30_000;
  return server;
}

export function createCheckServer(): Server {
  return createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] === '/check') res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
    else res.writeHead(404).end();
  });
}
