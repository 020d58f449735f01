import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseRpcRequest, rpcErrorBody, rpcResultBody } from '@dotmesh/rpc';

/**
 * Test support: a tiny JSON-RPC recorder on 127.0.0.1 that stores every request exactly as
 * received and answers from a handler table (like the recorder the transcript was made with).
 */
export interface Recorded {
  auth: string;
  body: string;
  method: string;
  params: unknown;
}

export type Handler = (params: unknown, auth: string) => unknown;

export interface Recorder {
  readonly port: number;
  readonly requests: Recorded[];
  /** Bodies recorded since the last call, then forgets them. */
  take(): Recorded[];
  close(): Promise<void>;
}

export class RpcFailure extends Error {
  readonly data: unknown;
  constructor(message: string, data: unknown = null) {
    super(message);
    this.data = data;
  }
}

export async function startRecorder(
  handlers: Record<string, Handler>,
  options: { unauthorized?: (auth: string) => boolean } = {},
): Promise<Recorder> {
  const requests: Recorded[] = [];
  let taken = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      const auth = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
      const parsed = parseRpcRequest(body);
      const method = parsed.ok ? parsed.method.replace(/^DotmeshRPC\./, '') : '';
      const params = parsed.ok ? parsed.params : undefined;
      requests.push({ auth, body, method, params });
      if (options.unauthorized?.(auth)) {
        res.statusCode = 401;
        res.end('Unauthorized.\n');
        return;
      }
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      const handler = handlers[method];
      try {
        if (!handler) throw new RpcFailure(`rpc: can't find method "DotmeshRPC.${method}"`);
        res.end(rpcResultBody(parsed.idText, handler(params, auth)));
      } catch (e) {
        res.end(rpcErrorBody(parsed.idText, (e as Error).message, e instanceof RpcFailure ? e.data : null));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    take() {
      const out = requests.slice(taken);
      taken = requests.length;
      return out;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
