import { type ClientRequest, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { type CommitOrigin, DotmeshError, errorFromObject } from '@dotmesh/core';
import { UNAUTHENTICATED_MESSAGE } from '@dotmesh/rpc';
import { type NodeTls, type TlsTrust, verifiedConnection } from '@dotmesh/rpc/tls';
import { isPlainSocket, type StreamTlsClient } from '@dotmesh/storage';
import { DATA_TRANSPORT_HEADER, dataAlpn, parseDataLine, TLS_PUMP_TRANSPORT } from './data-connections.ts';
import type { IncomingCommit, IncomingVolume } from './incoming.ts';
import { type CommitStream, type Hello, STREAM_UPGRADE_CAPABILITY, type TransferSide } from './side.ts';
import { AnswerReader, STREAM_GO, STREAM_UPGRADE } from './stream-protocol.ts';
import type { WireDot } from './wire-dot.ts';

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
  /** Commit streams may go on upgraded connections when the peer's hello offers them. */
  readonly streamUpgrade?: boolean;
  /**
   * A push over HTTPS to a pinned peer (certificate or cluster CA) asks for a data connection
   * of the pumps' own (data-connections.ts) when the stream's driver can write it.
   */
  readonly dataConnections?: boolean;
  /** Told of each connection a request of this transfer opens (to cut it early, see the server's PeerTransfers). */
  readonly onSocket?: (socket: Socket) => void;
}

/**
 * A peer server as one end of a transfer, over its `/transfer/v1` endpoints (peer-routes.ts,
 * peer-streams.ts), authenticated as the peer's user. Commit streams go on connections
 * upgraded to STREAM_UPGRADE when the peer's hello offers it (stream-protocol.ts), else as
 * plain HTTP bodies (what every version speaks). Every failure is a DotmeshError: the peer's
 * own error (code, hint and data kept, the message prefixed with the peer), UNAUTHENTICATED, or
 * UNAVAILABLE for a connection that fails, resets, or goes silent for `idleTimeoutMs`.
 */
export class PeerSide implements TransferSide {
  readonly label: string;
  readonly #peer: PeerAddress;
  /**
   * Another node's endpoint: the requests of this side share one connection, one after the
   * other (one TLS handshake per send to a node, not one per request); close() ends it.
   */
  readonly #nodeAgent: HttpsAgent | undefined;
  /** Commit streams go on upgraded connections (allowed, and the peer's hello offers them). */
  #streams = false;

  constructor(peer: PeerAddress) {
    this.#peer = peer;
    this.label = `peer ${new URL(peer.baseUrl).host}`;
    this.#nodeAgent = peer.node ? new HttpsAgent({ keepAlive: true, maxSockets: 1 }) : undefined;
  }

  /** Closes the connection a node's side keeps between its requests (nothing for other peers). Idempotent. */
  close(): void {
    this.#nodeAgent?.destroy();
  }

  async hello(): Promise<Hello> {
    const hello = (await this.#json('GET', 'hello', undefined)) as Hello;
    this.#streams =
      this.#peer.streamUpgrade === true &&
      Array.isArray(hello.capabilities) &&
      hello.capabilities.includes(STREAM_UPGRADE_CAPABILITY);
    return hello;
  }

  async state(namespace: string, name: string): Promise<WireDot | null> {
    const r = (await this.#json('POST', 'state', { namespace, name })) as { dot: WireDot | null };
    return r.dot;
  }

  /**
   * Pull. Upgraded: the peer writes the stream once told to (`start()`, or reading it through
   * Node), so a plain socket is read by the receiving driver from its first byte.
   */
  async exportCommit(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<CommitStream> {
    const q = new URLSearchParams({
      fsId,
      commitId,
      ...(parent ? { parentFsId: parent.fsId, parentCommitId: parent.commitId } : {}),
    });
    if (!this.#streams) {
      const res = await this.#request('GET', `export?${q}`, {});
      if (res.statusCode !== 200) throw await this.#errorOf(res);
      return { readable: () => res, close: () => res.destroy() };
    }
    const { socket, head } = await this.#upgrade('GET', `export?${q}`, {});
    if (head.length > 0) {
      socket.destroy();
      throw new DotmeshError('UNAVAILABLE', `${this.label} sent data before it was asked to (protocol error)`);
    }
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      socket.write(STREAM_GO);
    };
    return {
      readable: () => {
        start();
        return socket;
      },
      socket: { socket, start },
      close: () => socket.destroy(),
    };
  }

  async predictSize(fsId: string, commitId: string, parent: CommitOrigin | null): Promise<number> {
    const r = (await this.#json('POST', 'predict', { fsId, commitId, parent })) as { bytes: number };
    return typeof r.bytes === 'number' ? r.bytes : 0;
  }

  /**
   * Push. Upgraded: once the peer's driver owns the connection (its go byte), the stream goes
   * out — written by the sending driver itself on a plain socket, else piped by Node — while
   * the peer's answer comes back on the same connection; the answer wins over a failed send
   * (it says why the peer stopped).
   */
  async receiveCommit(c: IncomingCommit, stream: CommitStream, onProgress: (bytes: number) => void): Promise<void> {
    const header = Buffer.from(JSON.stringify(c)).toString('base64url');
    if (!this.#streams) {
      const body = stream.readable();
      let bytes = 0;
      body.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        onProgress(bytes);
      });
      const res = await this.#request(
        'POST',
        'receive',
        { [COMMIT_HEADER]: header, 'content-type': 'application/octet-stream' },
        body,
      );
      // 200 with keep-alive spaces while the peer finishes, then one JSON object.
      const text = await this.#body(res);
      const parsed = parseJson(text);
      if (res.statusCode !== 200 || parsed?.error) throw this.#errorFrom(res.statusCode ?? 0, parsed, text);
      return;
    }
    const trust = stream.writeTo ? this.#dataTrust() : undefined;
    const { socket, head, headers } = await this.#upgrade('POST', 'receive', {
      [COMMIT_HEADER]: header,
      ...(trust ? { [DATA_TRANSPORT_HEADER]: TLS_PUMP_TRANSPORT } : {}),
    });
    const data = trust && headers[DATA_TRANSPORT_HEADER] === TLS_PUMP_TRANSPORT ? trust : undefined;
    try {
      await this.#push(socket, head, stream, onProgress, data);
    } finally {
      socket.destroy();
    }
  }

  /**
   * How this push's pump trusts the peer on a data connection: the pin the control connection
   * was trusted by. Undefined (no data connection) but over HTTPS to a pinned peer, asked for.
   */
  #dataTrust(): StreamTlsClient['trust'] | undefined {
    const tls = this.#peer.tls;
    if (this.#peer.dataConnections !== true || this.#peer.node || !this.#peer.baseUrl.startsWith('https:') || !tls)
      return undefined;
    if (tls.pin !== undefined) return { certSha256: tls.pin };
    if (tls.caPin !== undefined) return { caPin: tls.caPin };
    return undefined;
  }

  /**
   * The stream on a data connection (data-connections.ts): the pump dials the peer's TLS port
   * itself, with the line's stream id as ALPN protocol and its key.
   */
  async #sendOnDataConnection(
    stream: CommitStream,
    line: string,
    trust: StreamTlsClient['trust'],
    onProgress: (bytes: number) => void,
  ): Promise<void> {
    const named = parseDataLine(line);
    if (!named || !stream.writeTo) throw this.#unreachable(new Error('protocol error: a malformed data connection line'));
    const url = new URL(this.#peer.baseUrl);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const socket = netConnect({ host, port: Number(url.port || 443) });
    socket.on('error', () => {}); // the pump reports a connection that fails
    this.#peer.onSocket?.(socket);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', (e) => reject(this.#unreachable(e)));
        socket.setTimeout(this.#peer.idleTimeoutMs, () => socket.destroy(this.#silent()));
      });
      socket.setTimeout(0);
      await stream.writeTo(socket, {
        idleTimeoutMs: this.#peer.idleTimeoutMs,
        onProgress,
        tls: {
          role: 'client',
          serverName: host,
          trust,
          alpn: dataAlpn(named.id),
          streamKey: named.key,
          handshakeTimeoutMs: this.#peer.idleTimeoutMs,
        },
      });
    } finally {
      socket.destroy();
    }
  }

  /**
   * The client side of an upgraded push (stream-protocol.ts); `head`: the peer's first bytes;
   * `data`: the peer agreed to a data connection, trusted so.
   */
  async #push(
    socket: Socket,
    head: Buffer,
    stream: CommitStream,
    onProgress: (bytes: number) => void,
    data: StreamTlsClient['trust'] | undefined,
  ): Promise<void> {
    let sending: Promise<void> | undefined;
    let sendError: unknown;
    const send = (line: string) => {
      const options = { idleTimeoutMs: this.#peer.idleTimeoutMs, onProgress };
      sending = (
        data
          ? this.#sendOnDataConnection(stream, line, data, onProgress)
          : stream.writeTo && isPlainSocket(socket)
            ? stream.writeTo(socket, options)
            : pipeInto(stream.readable(), socket, onProgress)
      ).catch((e: unknown) => {
        sendError = e;
        // an answer already on its way says why: give it a moment, then give up on the connection
        setTimeout(() => socket.destroy(), 1000).unref();
      });
    };
    const reader = new AnswerReader(send, { line: data !== undefined });
    const answered = new Promise<void>((resolve, reject) => {
      const feed = (chunk: Buffer) => {
        try {
          reader.feed(chunk);
        } catch (e) {
          reject(this.#unreachable(new Error(`protocol error: ${(e as Error).message}`)));
        }
      };
      feed(head);
      socket.on('data', feed);
      socket.once('end', () => resolve());
      socket.once('close', () => resolve());
      socket.once('error', (e) => reject(this.#unreachable(e)));
    });
    // The peer sends a keep-alive every second: silence means the connection is gone.
    socket.setTimeout(this.#peer.idleTimeoutMs, () => socket.destroy(this.#silent()));
    socket.resume();
    await answered.catch((e: unknown) => {
      throw sendError ?? e;
    });
    const answer = reader.answer();
    if (answer?.error) throw this.#errorFrom(200, answer, reader.text);
    if (sendError) throw sendError;
    if (answer?.ok !== true) {
      throw this.#unreachable(new Error('the connection was closed before the answer'));
    }
    await sending;
    if (sendError) throw sendError;
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
    const req = this.#send(method, path, headers);
    return new Promise((resolve, reject) => {
      req.on('response', (res) => {
        res.socket.setTimeout(this.#peer.idleTimeoutMs);
        resolve(res);
      });
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

  /**
   * A request on a fresh connection, nothing pooled that a link reset could have broken — but
   * for another node's endpoint, where the requests of one send share a connection (a reset one
   * fails the request, and the engine's next attempt opens a new one).
   */
  #send(method: string, path: string, headers: Record<string, string>): ClientRequest {
    const url = new URL(`${PROTOCOL_PATH}/${path}`, this.#peer.baseUrl);
    const node = this.#peer.node;
    const auth = Buffer.from(`${this.#peer.user}:${this.#peer.apiKey}`).toString('base64');
    const options: RequestOptions = { method, headers: node ? headers : { ...headers, authorization: `Basic ${auth}` } };
    const https = url.protocol === 'https:';
    // https gets its own verified connection (no agent: an agent would ignore createConnection),
    // http `agent: false`; a node's endpoint this side's keep-alive agent.
    if (node) {
      Object.assign(options, {
        agent: this.#nodeAgent,
        ca: node.tls.ca,
        cert: node.tls.cert,
        key: node.tls.key,
        checkServerIdentity: (_host: string, cert: { subject?: { CN?: string } }) =>
          cert.subject?.CN === node.nodeId ? undefined : new Error(`the peer is not node ${node.nodeId}`),
      });
    } else if (https) Object.assign(options, { createConnection: verifiedConnection(this.#peer.tls ?? {}) });
    else options.agent = false;
    const req = (https ? httpsRequest : httpRequest)(url, options);
    req.setTimeout(this.#peer.idleTimeoutMs, () => req.destroy(this.#silent()));
    if (this.#peer.onSocket) req.once('socket', this.#peer.onSocket);
    return req;
  }

  /**
   * A request upgraded to STREAM_UPGRADE (stream-protocol.ts): resolves with the connection,
   * paused, once the peer answered 101, and the bytes that came with the 101 (`head`); any
   * other answer is the peer's error. A fresh connection, as #request.
   */
  #upgrade(
    method: string,
    path: string,
    headers: Record<string, string>,
  ): Promise<{ socket: Socket; head: Buffer; headers: IncomingMessage['headers'] }> {
    const req = this.#send(method, path, { ...headers, connection: 'Upgrade', upgrade: STREAM_UPGRADE });
    return new Promise((resolve, reject) => {
      req.on('error', (e) => reject(this.#unreachable(e)));
      req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
        socket.pause();
        socket.setTimeout(0);
        socket.on('error', () => {}); // reported by whoever reads or writes it
        resolve({ socket, head, headers: res.headers });
      });
      req.on('response', (res) => {
        this.#body(res).then((body) => reject(this.#errorFrom(res.statusCode ?? 0, parseJson(body), body)), reject);
      });
      req.end();
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

/**
 * Pipes `stream` into `socket` without ending it, counting the bytes; settles when the stream
 * ended (its bytes handed to the socket) or failed.
 */
function pipeInto(stream: Readable, socket: Socket, onProgress: (bytes: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      onProgress(bytes);
    });
    stream.once('error', reject);
    stream.once('end', () => resolve());
    socket.once('close', () => stream.destroy());
    stream.pipe(socket, { end: false });
  });
}
