import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { type CommitOrigin, DotmeshError, errorFromObject } from '@dotmesh/core';
import { UNAUTHENTICATED_MESSAGE } from '@dotmesh/rpc';
import { type TlsTrust, verifiedConnection } from '@dotmesh/rpc/tls';
import type { NodeTls } from '../cluster/node-transport.ts';
import type { WireDot } from './dot-state.ts';
import type { IncomingVolume } from './incoming.ts';
import type { IncomingCommit } from './receive-commit.ts';
import type { Hello, TransferSide } from './side.ts';

export const PROTOCOL_PATH = '/transfer/v1';
/** Header carrying the JSON description of a pushed commit (base64url). */
export const COMMIT_HEADER = 'x-dotmesh-commit';

export interface PeerAddress {
  /** http(s)://host:port */
  readonly baseUrl: string;
  readonly user: string;
  /** Kept in memory only, for the duration of the transfer. */
  readonly apiKey: string;
  /** https: a pinned certificate (else the system CAs). */
  readonly tls?: TlsTrust;
  /** A request fails when no byte moves in either direction for this long. */
  readonly idleTimeoutMs: number;
  /**
   * Another node of this cluster, at its node-to-node endpoint (`baseUrl`): mutual TLS with this
   * node's certificate, the peer's must name `nodeId`; no user or key is sent.
   */
  readonly node?: { readonly nodeId: string; readonly tls: NodeTls };
}

/**
 * A peer server as one end of a transfer, over its `/transfer/v1` endpoints (peer-routes.ts),
 * authenticated as the peer's user. Every failure is a DotmeshError: the peer's own error
 * (code, hint and data kept, the message prefixed with the peer), UNAUTHENTICATED, or
 * UNAVAILABLE for a connection that fails, resets, or goes silent for `idleTimeoutMs`.
 */
export class PeerSide implements TransferSide {
  readonly label: string;
  readonly #peer: PeerAddress;

  constructor(peer: PeerAddress) {
    this.#peer = peer;
    this.label = `peer ${new URL(peer.baseUrl).host}`;
  }

  hello(): Promise<Hello> {
    return this.#json('GET', 'hello', undefined) as Promise<Hello>;
  }

  async state(namespace: string, name: string): Promise<WireDot | null> {
    const r = (await this.#json('POST', 'state', { namespace, name })) as { dot: WireDot | null };
    return r.dot;
  }

  async exportCommit(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<Readable> {
    const q = new URLSearchParams({
      fsId,
      commitId,
      ...(parent ? { parentFsId: parent.fsId, parentCommitId: parent.commitId } : {}),
    });
    const res = await this.#request('GET', `export?${q}`, {});
    if (res.statusCode !== 200) throw await this.#errorOf(res);
    return res;
  }

  async predictSize(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<number> {
    const r = (await this.#json('POST', 'predict', { fsId, commitId, parent })) as { bytes: number };
    return typeof r.bytes === 'number' ? r.bytes : 0;
  }

  async receiveCommit(c: IncomingCommit, framed: Readable): Promise<void> {
    const header = Buffer.from(JSON.stringify(c)).toString('base64url');
    const res = await this.#request(
      'POST',
      'receive',
      { [COMMIT_HEADER]: header, 'content-type': 'application/octet-stream' },
      framed,
    );
    // 200 with keep-alive spaces while the peer finishes, then one JSON object.
    const body = await this.#body(res);
    const parsed = parseJson(body);
    if (res.statusCode !== 200 || parsed?.error) throw this.#errorFrom(res.statusCode ?? 0, parsed, body);
  }

  async ensureBranch(v: IncomingVolume): Promise<void> {
    await this.#json('POST', 'branch', { volume: v });
  }

  async stash(fsId: string, common: string | null): Promise<string> {
    const r = (await this.#json('POST', 'stash', { fsId, common })) as { branch: string };
    return r.branch;
  }

  async stashBranch(fsId: string): Promise<string> {
    const r = (await this.#json('POST', 'stash-branch', { fsId })) as { branch: string };
    return r.branch;
  }

  async commitDirty(fsId: string): Promise<void> {
    await this.#json('POST', 'commit-dirty', { fsId });
  }

  async #json(method: string, path: string, body: unknown): Promise<unknown> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const res = await this.#request(method, path, text ? { 'content-type': 'application/json' } : {}, text);
    const reply = await this.#body(res);
    const parsed = parseJson(reply);
    if (res.statusCode !== 200 || parsed === undefined || parsed.error) throw this.#errorFrom(res.statusCode ?? 0, parsed, reply);
    return parsed;
  }

  /** Sends a request; resolves with the response once its headers arrived. */
  #request(method: string, path: string, headers: Record<string, string>, body?: string | Readable): Promise<IncomingMessage> {
    const url = new URL(`${PROTOCOL_PATH}/${path}`, this.#peer.baseUrl);
    const node = this.#peer.node;
    const auth = Buffer.from(`${this.#peer.user}:${this.#peer.apiKey}`).toString('base64');
    const options: RequestOptions = { method, headers: node ? headers : { ...headers, authorization: `Basic ${auth}` } };
    const https = url.protocol === 'https:';
    // A fresh connection per request, nothing pooled that a link reset could have broken:
    // https gets its own verified connection (no agent: an agent would ignore createConnection),
    // http `agent: false`.
    if (node) {
      Object.assign(options, {
        agent: false,
        ca: node.tls.ca,
        cert: node.tls.cert,
        key: node.tls.key,
        checkServerIdentity: (_host: string, cert: { subject?: { CN?: string } }) =>
          cert.subject?.CN === node.nodeId ? undefined : new Error(`the peer is not node ${node.nodeId}`),
      });
    } else if (https) Object.assign(options, { createConnection: verifiedConnection(this.#peer.tls ?? {}) });
    else options.agent = false;
    const idle = this.#peer.idleTimeoutMs;
    return new Promise((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, options, (res) => {
        res.socket.setTimeout(idle);
        resolve(res);
      });
      req.setTimeout(idle, () => req.destroy(this.#silent()));
      req.on('error', (e) => reject(this.#unreachable(e)));
      if (body === undefined || typeof body === 'string') {
        req.end(body);
        return;
      }
      body.on('error', (e) => req.destroy(e));
      // A request that failed (reset, idle timeout) stops its source (e.g. kills `btrfs send`).
      req.once('close', () => {
        if (!body.readableEnded) body.destroy();
      });
      body.pipe(req);
    });
  }

  #body(res: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 1024 * 1024) chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', (e) => reject(this.#unreachable(e)));
      res.on('aborted', () => reject(this.#unreachable(new Error('the connection was closed mid-response'))));
    });
  }

  async #errorOf(res: IncomingMessage): Promise<DotmeshError> {
    const body = await this.#body(res);
    return this.#errorFrom(res.statusCode ?? 0, parseJson(body), body);
  }

  #errorFrom(status: number, parsed: Record<string, unknown> | undefined, body: string): DotmeshError {
    if (status === 401) {
      return new DotmeshError('UNAUTHENTICATED', `${this.label} refused user ${this.#peer.user}: ${UNAUTHENTICATED_MESSAGE}`, {
        hint: 'check the API key of the remote (dm remote add)',
      });
    }
    const err = parsed?.error as Record<string, unknown> | undefined;
    if (err && typeof err.message === 'string') return errorFromObject(err, { prefix: `${this.label}: ` });
    if (status === 404) {
      return new DotmeshError('UNSUPPORTED', `${this.label} does not speak the dotmesh transfer protocol v1 (HTTP 404)`, {
        hint: 'upgrade the peer to a dotmesh-server with transfer protocol v1',
      });
    }
    return new DotmeshError(
      status >= 500 ? 'UNAVAILABLE' : 'INTERNAL',
      `${this.label} answered HTTP ${status}: ${body.trim().slice(0, 200)}`,
    );
  }

  #silent(): DotmeshError {
    return new DotmeshError(
      'UNAVAILABLE',
      `${this.label} sent nothing for ${Math.round(this.#peer.idleTimeoutMs / 100) / 10} s (connection lost?)`,
    );
  }

  #unreachable(e: Error): DotmeshError {
    if (e instanceof DotmeshError) return e;
    return new DotmeshError('UNAVAILABLE', `cannot reach ${this.label}: ${e.message}`, { cause: e });
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
