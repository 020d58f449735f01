import type { IncomingMessage, RequestOptions } from 'node:http';
import { request as httpRequest } from 'node:http';
import { DotmeshError, type ErrorCode } from '@dotmesh/core';
import { rpcRequestBody, SERVICE } from './codec.ts';
// Types only: the client never loads the zod schemas (keeps `dm` start-up fast).
import type { CallParamsOf, MethodName, ResultOf } from './methods.ts';
import { errorFromRpc } from './rpc-error.ts';
import type { TlsTrust } from './tls.ts';

/**
 * The one typed client every Dotmesh client (dm, Docker plugin, Kubernetes parts, hub) uses to
 * talk to a dotmesh-server: JSON-RPC 2.0 over HTTP POST with Basic auth, as the original.
 *
 * Contracts:
 * - Every failure is a DotmeshError: HTTP 401 → UNAUTHENTICATED with the original's text; a
 *   JSON-RPC error → the server's error rebuilt with its code, message (verbatim), hint and
 *   data (rpc-error.ts; INTERNAL when the server sent no code); an unreachable server →
 *   UNAVAILABLE.
 * - A null or absent result is an error ("result is null"), as in the original client.
 * - Request ids are random 63-bit decimal integers, as the original client's.
 */
export interface DotmeshClientOptions {
  /** e.g. http://127.0.0.1:32607/rpc */
  readonly url: string;
  readonly user: string;
  readonly apiKey: string;
  /** Per-request timeout; 0 or absent = none (long mutations may legitimately block). */
  readonly timeoutMs?: number;
  /** Receives the raw request and response lines, as `dm --verbose` prints them. */
  readonly verbose?: (line: string) => void;
  /** Request id generator (tests); default random 63-bit decimal. */
  readonly newId?: () => string;
  /** https URLs: how the server's certificate is trusted (a pin, else the CAs); see tls.ts. */
  readonly tls?: TlsTrust;
}

export interface CallOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export const UNAUTHENTICATED_MESSAGE = 'Permission denied. Please check that your API key is still valid.';
const UNREACHABLE_HINT = 'is it running? try `dm cluster init` or check the remote with `dm remote -v`';

/**
 * A random integer in [0, 2^63) as decimal text, like Go's rand.Int63. It only pairs a response
 * with its request, so Math.random does: node:crypto would add its load to every `dm` start.
 */
export function randomRpcId(): string {
  const high = BigInt(Math.floor(Math.random() * 2 ** 31));
  const low = BigInt(Math.floor(Math.random() * 2 ** 32));
  return ((high << 32n) | low).toString();
}

interface RawResponse {
  readonly status: number;
  readonly body: string;
}

export class DotmeshClient {
  readonly url: string;
  private readonly options: DotmeshClientOptions;

  constructor(options: DotmeshClientOptions) {
    this.options = options;
    this.url = options.url;
  }

  /** Calls a typed method; `params` are sent as given (their key order is kept on the wire). */
  call<M extends MethodName>(method: M, params: CallParamsOf<M>, options: CallOptions = {}): Promise<ResultOf<M>> {
    return this.callRaw(`${SERVICE}.${method}`, params, options) as Promise<ResultOf<M>>;
  }

  /** Calls any method by its wire name (`DotmeshRPC.X`) with any JSON params (`dm debug`). */
  async callRaw(wireMethod: string, params: unknown, options: CallOptions = {}): Promise<unknown> {
    const body = rpcRequestBody((this.options.newId ?? randomRpcId)(), wireMethod, params);
    this.options.verbose?.('send rpc request');
    this.options.verbose?.(body);
    const res = await this.post(body, options);
    this.options.verbose?.('got rpc response');
    this.options.verbose?.(res.body);
    return this.interpret(wireMethod, res);
  }

  private interpret(wireMethod: string, res: RawResponse): unknown {
    if (res.status === 401) throw new DotmeshError('UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE);
    if (res.status !== 200) {
      const code: ErrorCode = res.status >= 502 && res.status <= 504 ? 'UNAVAILABLE' : 'INTERNAL';
      const text = res.body.trim().slice(0, 300);
      throw new DotmeshError(code, `dotmesh-server at ${this.url} answered HTTP ${res.status} to ${wireMethod}: ${text}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body);
    } catch {
      throw new DotmeshError('INTERNAL', `dotmesh-server at ${this.url} sent an invalid JSON-RPC response to ${wireMethod}`);
    }
    const reply = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
    if (reply.error !== undefined && reply.error !== null) throw errorFromRpc(reply.error);
    if (reply.result === undefined || reply.result === null) throw new DotmeshError('INTERNAL', 'result is null');
    return reply.result;
  }

  private async post(body: string, options: CallOptions): Promise<RawResponse> {
    const url = new URL(this.url);
    const auth = Buffer.from(`${this.options.user}:${this.options.apiKey}`).toString('base64');
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? 0;
    const reqOptions: RequestOptions = {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
        Authorization: `Basic ${auth}`,
      },
      ...(options.signal ? { signal: options.signal } : {}),
    };
    // https is loaded only when needed: it pulls in TLS, which costs start-up time. The
    // connection is handed to HTTP only once the certificate is trusted (tls.ts).
    let request = httpRequest;
    if (url.protocol === 'https:') {
      const [https, { verifiedConnection }] = await Promise.all([import('node:https'), import('./tls.ts')]);
      request = https.request;
      // No agent: a request with its own createConnection gets a fresh, verified connection.
      Object.assign(reqOptions, { createConnection: verifiedConnection(this.options.tls ?? {}) });
    }
    return new Promise<RawResponse>((resolve, reject) => {
      const req = request(url, reqOptions, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e) => reject(this.unreachable(e)));
      });
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () => {
          req.destroy(
            new DotmeshError('UNAVAILABLE', `timed out after ${timeoutMs} ms waiting for dotmesh-server at ${this.url}`),
          );
        });
      }
      req.on('error', (e) => reject(e instanceof DotmeshError ? e : this.unreachable(e)));
      req.end(body);
    });
  }

  private unreachable(e: Error): DotmeshError {
    const code = (e as NodeJS.ErrnoException).code;
    return new DotmeshError('UNAVAILABLE', `cannot reach dotmesh-server at ${this.url}: ${e.message}`, {
      ...(code === 'ECONNREFUSED' ? { hint: UNREACHABLE_HINT } : {}),
      cause: e,
    });
  }
}

/** The RPC URL of a remote: http://host:port/rpc (https when port is 443 or `https` is set). */
export function rpcUrl(hostname: string, port: number, https = false): string {
  const host = hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname;
  if (port === 443) return `https://${host}/rpc`;
  return https ? `https://${host}:${port}/rpc` : `http://${host}:${port}/rpc`;
}
