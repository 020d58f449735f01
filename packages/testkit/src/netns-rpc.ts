import { resolve } from 'node:path';
import { DotmeshError, type ErrorCode } from '@dotmesh/core';
import { type CallOptions, DotmeshClient, type DotmeshClientOptions } from '@dotmesh/rpc';
import { routeCheck, type TestHost } from './hosts.ts';

const CALL_SCRIPT = resolve(import.meta.dirname, 'netns-rpc-call.ts');

/**
 * A DotmeshClient whose every call runs inside `host`'s network namespace (a short-lived
 * `nsenter --net=... node` process), after a route check to the server's address: the test
 * process itself lives in the root namespace and must never contact a test address.
 */
export class NetnsClient extends DotmeshClient {
  readonly host: TestHost;
  readonly #o: DotmeshClientOptions;

  constructor(host: TestHost, options: DotmeshClientOptions) {
    super(options);
    this.host = host;
    this.#o = options;
  }

  override async callRaw(wireMethod: string, params: unknown, options: CallOptions = {}): Promise<unknown> {
    options.signal?.throwIfAborted();
    await routeCheck(this.host, new URL(this.url).hostname);
    const timeoutMs = options.timeoutMs ?? this.#o.timeoutMs;
    const req = { url: this.url, user: this.#o.user, apiKey: this.#o.apiKey, method: wireMethod, params, timeoutMs };
    const { stdout } = await this.host.exec(process.execPath, [CALL_SCRIPT, JSON.stringify(req)], {
      timeoutMs: (timeoutMs ?? 120_000) + 10_000,
    });
    const reply = JSON.parse(stdout) as { ok: boolean; result?: unknown; code?: ErrorCode; message?: string; hint?: string };
    if (reply.ok) return reply.result;
    throw new DotmeshError(reply.code ?? 'INTERNAL', reply.message ?? 'unknown error', reply.hint ? { hint: reply.hint } : {});
  }
}
