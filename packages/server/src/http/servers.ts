import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { ERROR_CODES, isDotmeshError } from '@dotmesh/core';
import type { Logger } from '../log.ts';

/**
 * The two listeners: the API port (POST /rpc; GET /check, /diff, /metrics) and the liveness port (GET /check
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

export interface ApiRoutes {
  readonly rpc: RequestHandler;
  /** GET /diff/<ns>:<name>[/<commit>] */
  readonly diff?: RequestHandler;
  /** GET /metrics (no auth) */
  readonly metrics?: RequestHandler;
  /** /transfer/v1/* (server-to-server transfers) */
  readonly transfer?: RequestHandler;
  /** /transfer/v1/* on connections upgraded to a commit stream (@dotmesh/transfer peer-streams.ts). */
  readonly transferStreams?: (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;
  /** Called once per finished response (metrics). */
  readonly observe?: (method: string, path: string, code: number, seconds: number) => void;
}

export function createApiServer(routes: ApiRoutes, logger: Logger): Server {
  const server = createServer(apiRequestHandler(routes, logger));
  handleUpgrades(server, routes, logger);
  // No overall request deadline: a transfer stream may take hours. Transfer endpoints drop a
  // connection idle for the transfer idle timeout; /rpc bodies are small and size-limited.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  return server;
}

/**
 * Upgraded connections of the API port (HTTP and HTTPS): the commit streams under
 * /transfer/v1/; any other upgrade is answered 404. Without a listener for upgrades (a server
 * with stream upgrades off, or an older version) Node serves such a request as an ordinary one.
 */
export function handleUpgrades(server: Server | HttpsServer, routes: ApiRoutes, logger: Logger): void {
  const streams = routes.transferStreams;
  if (!streams) return;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (!path.startsWith('/transfer/v1/')) {
      socket.on('error', () => {});
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    streams(req, socket, head).catch((err: unknown) => {
      logger.error({ err, path: path.slice(0, 200) }, 'unhandled error in a transfer stream');
      socket.destroy();
    });
  });
}

/** The API port's routing, shared by the HTTP server and the HTTPS one (tls/https-server.ts). */
export function apiRequestHandler(routes: ApiRoutes, logger: Logger): RequestHandler {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const observe = routes.observe;
    if (observe) {
      const started = process.hrtime.bigint();
      res.once('finish', () => observe(req.method ?? '', path, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9));
    }
    const route =
      path === '/rpc'
        ? routes.rpc
        : path.startsWith('/diff/')
          ? routes.diff
          : path === '/metrics'
            ? routes.metrics
            : path.startsWith('/transfer/v1/')
              ? routes.transfer
              : undefined;
    if (route) {
      Promise.resolve(route(req, res)).catch((err: unknown) => {
        // A DotmeshError before the route could answer (the store unavailable while checking
        // credentials): its status and message, as plain text.
        if (isDotmeshError(err)) {
          logger.warn({ err, path: path.slice(0, 200) }, 'an API route failed before it could answer');
          if (!res.headersSent) {
            res
              .writeHead(ERROR_CODES[err.code].httpStatus, {
                'Content-Type': 'text/plain; charset=utf-8',
                'X-Content-Type-Options': 'nosniff',
              })
              .end(`${err.fullMessage}\n`);
          }
          return;
        }
        logger.error({ err, path: path.slice(0, 200) }, 'unhandled error in an API route');
        if (!res.headersSent) res.writeHead(500).end('internal error\n');
      });
      return;
    }
    if (path === '/check' && req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 page not found\n');
  };
}

export function createCheckServer(): Server {
  return createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] === '/check') res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
    else res.writeHead(404).end();
  });
}
