import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { type CallOptions, DotmeshClient, errorFromRpc, rpcRequestBody, UNAUTHENTICATED_MESSAGE } from '@dotmesh/rpc';
import type { Cleanup } from './cleanup.ts';
import { routeCheck, type TestHost } from './hosts.ts';
import { makeTempDir } from './tmp.ts';

/**
 * RPC clients whose calls run inside a test host's network namespace with `curl` (after a
 * route check), for tests that make hundreds of calls: NetnsClient starts a node process per
 * call, which costs about three times as long. Errors are those the real client makes
 * (UNAUTHENTICATED for 401, the server's JSON-RPC error rebuilt, UNAVAILABLE when unreachable).
 * Credentials go in a 0600 header file under the test root, never in curl's argv.
 */
export class CurlClients {
  readonly #cleanup: Cleanup;
  #dir: string | undefined;
  #files = 0;
  readonly #made = new Map<string, DotmeshClient>();
  readonly #headers = new Map<string, Promise<string>>();

  constructor(cleanup: Cleanup) {
    this.#cleanup = cleanup;
  }

  /** A client of the server at `url` as `user` (API key or password), calling from `host`. */
  client(host: TestHost, url: string, user: string, secret: string): DotmeshClient {
    const key = `${host.name} ${url} ${user}:${secret}`;
    let c = this.#made.get(key);
    if (!c) {
      c = new CurlClient(host, url, () => this.#headerFile(user, secret));
      this.#made.set(key, c);
    }
    return c;
  }

  /**
   * POSTs `body` as it is to `url` from `host` as `user`; resolves the HTTP status and the
   * reply's text untouched (for wire-level checks, such as a request id echoed digit for digit).
   */
  async post(host: TestHost, url: string, user: string, secret: string, body: string): Promise<{ status: number; text: string }> {
    await routeCheck(host, new URL(url).hostname);
    const { stdout } = await host.exec('curl', curlPostArgs(await this.#headerFile(user, secret), body, 120, url), {
      timeoutMs: 130_000,
    });
    const nl = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(nl + 1)), text: stdout.slice(0, nl) };
  }

  /** The 0600 file with the Authorization header of `user:secret` (one per pair). */
  #headerFile(user: string, secret: string): Promise<string> {
    const key = `${user}:${secret}`;
    let file = this.#headers.get(key);
    if (!file) {
      file = this.#writeHeaderFile(user, secret);
      this.#headers.set(key, file);
    }
    return file;
  }

  async #writeHeaderFile(user: string, secret: string): Promise<string> {
    this.#dir ??= await makeTempDir('rpc-auth-', this.#cleanup);
    const file = join(this.#dir, `auth-${this.#files++}`);
    await writeFile(file, `Authorization: Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}\n`, { mode: 0o600 });
    return file;
  }
}

let rpcIds = 0;

/** JSON-RPC over `curl` run inside `host`'s namespace; errors as the real client makes them. */
class CurlClient extends DotmeshClient {
  readonly #host: TestHost;
  readonly #headerFile: () => Promise<string>;
  #file: Promise<string> | undefined;

  constructor(host: TestHost, url: string, headerFile: () => Promise<string>) {
    super({ url, user: '', apiKey: '' });
    this.#host = host;
    this.#headerFile = headerFile;
  }

  override async callRaw(wireMethod: string, params: unknown, options: CallOptions = {}): Promise<unknown> {
    await routeCheck(this.#host, new URL(this.url).hostname);
    this.#file ??= this.#headerFile();
    const headerFile = await this.#file;
    const body = rpcRequestBody(String(++rpcIds), wireMethod, params);
    const seconds = Math.ceil((options.timeoutMs ?? 120_000) / 1000);
    let stdout: string;
    try {
      ({ stdout } = await this.#host.exec('curl', curlPostArgs(headerFile, body, seconds, this.url), {
        timeoutMs: seconds * 1000 + 10_000,
      }));
    } catch (e) {
      throw new DotmeshError('UNAVAILABLE', `cannot reach dotmesh-server at ${this.url}: ${(e as Error).message}`);
    }
    const nl = stdout.lastIndexOf('\n');
    const status = Number(stdout.slice(nl + 1));
    const text = stdout.slice(0, nl);
    if (status === 401) throw new DotmeshError('UNAUTHENTICATED', UNAUTHENTICATED_MESSAGE);
    if (status !== 200) throw new DotmeshError('INTERNAL', `HTTP ${status} to ${wireMethod}: ${text.slice(0, 300)}`);
    const reply = JSON.parse(text) as { result?: unknown; error?: unknown };
    if (reply.error !== undefined && reply.error !== null) throw errorFromRpc(reply.error);
    if (reply.result === undefined || reply.result === null) throw new DotmeshError('INTERNAL', 'result is null');
    return reply.result;
  }
}

/** curl's arguments for a JSON POST with the headers in `headerFile`; stdout ends with `\n<status>`. */
function curlPostArgs(headerFile: string, body: string, seconds: number, url: string): string[] {
  return [
    '-sS',
    '--max-time',
    String(seconds),
    '-H',
    `@${headerFile}`,
    '-H',
    'Content-Type: application/json',
    '--data-binary',
    body,
    '-w',
    '\n%{http_code}',
    url,
  ];
}
