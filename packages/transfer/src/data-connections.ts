import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { DotmeshError } from '@dotmesh/core';
import { STREAM_KEY_BYTES, type StreamTlsServer } from '@dotmesh/storage';
import { STREAM_UPGRADE } from './stream-protocol.ts';

/**
 * Commit streams over HTTPS on a data connection of the pumps' own (docs/decisions.md, "Commit
 * streams over HTTPS"). The sender of a push asks for one with DATA_TRANSPORT_HEADER on its
 * upgrade request; a receiver that can answers 101 with the same header and, instead of the go
 * byte, a line `<stream id>:<stream key, hex>\n`; the sender's pump then dials the receiver's
 * TLS port with the one ALPN protocol `dataAlpn(id)` and sends the key inside TLS, and the
 * receiver's pump reads the stream. The control connection keeps the keep-alives and the answer.
 */
export const DATA_TRANSPORT_HEADER = 'dotmesh-stream-transport';
export const TLS_PUMP_TRANSPORT = 'tls-pump/1';

const ALPN_PREFIX = `${STREAM_UPGRADE}:`;
const ID_BYTES = 16;
const ID_PATTERN = /^[0-9a-f]{32}$/;
const LINE_PATTERN = /^([0-9a-f]{32}):([0-9a-f]{64})$/;

/** The ALPN protocol naming stream `id` on the data connection. */
export function dataAlpn(id: string): string {
  return `${ALPN_PREFIX}${id}`;
}

/** The receiver's line (without its newline) for a stream. */
export function dataLine(id: string, key: Buffer): string {
  return `${id}:${key.toString('hex')}`;
}

/** Stream id and key from the receiver's line; INVALID_ARGUMENT-free: undefined when malformed. */
export function parseDataLine(line: string): { id: string; key: Buffer } | undefined {
  const m = LINE_PATTERN.exec(line);
  return m?.[1] && m[2] ? { id: m[1], key: Buffer.from(m[2], 'hex') } : undefined;
}

/** The data connection of one stream, ready for the receiving driver's pump. */
export interface DataConnection {
  readonly socket: Socket;
  readonly tls: StreamTlsServer;
}

/** One stream waiting for its data connection. */
export interface ExpectedConnection {
  readonly id: string;
  readonly key: Buffer;
  /** The connection once it arrived; UNAVAILABLE when it did not within the wait, or cancel() came first. */
  readonly connection: Promise<DataConnection>;
  /** Stops waiting (the id is refused from now on); a connection already taken is destroyed. Idempotent. */
  cancel(): void;
}

/**
 * The receiver's registry of streams waiting for their data connection: each a random id and
 * a fresh random key, used once (taken, canceled or expired, the id is gone), waiting at most
 * `waitMs`. The TLS port (the server's shared-tls-port.ts) asks take() about each ClientHello's
 * ALPN protocols; the pump given the connection checks the key (a wrong one ends it before any
 * byte of a stream is read).
 */
export class DataConnections {
  readonly #waiting = new Map<string, (socket: Socket, peeked: Buffer) => void>();
  readonly #tls: Omit<StreamTlsServer, 'role' | 'alpn' | 'peeked' | 'streamKey'>;
  #taken = 0;

  constructor(tls: Omit<StreamTlsServer, 'role' | 'alpn' | 'peeked' | 'streamKey'>) {
    this.#tls = tls;
  }

  /** Data connections handed to a stream so far (a server's proof of the route its pushes took). */
  get taken(): number {
    return this.#taken;
  }

  /** Streams waiting now. */
  get waiting(): number {
    return this.#waiting.size;
  }

  expect(waitMs: number): ExpectedConnection {
    const id = randomBytes(ID_BYTES).toString('hex');
    const key = randomBytes(STREAM_KEY_BYTES);
    let taken: Socket | undefined;
    let settle: { resolve: (c: DataConnection) => void; reject: (e: Error) => void } | undefined;
    const connection = new Promise<DataConnection>((resolve, reject) => {
      settle = { resolve, reject };
    });
    connection.catch(() => {}); // a caller that stopped waiting need not look
    const timer = setTimeout(() => {
      this.#waiting.delete(id);
      settle?.reject(
        new DotmeshError('UNAVAILABLE', `the data connection of commit stream ${id} did not arrive within ${waitMs} ms`, {
          hint: 'check that the TLS port of this server is reachable from the sender on the address it dialled',
        }),
      );
    }, waitMs);
    this.#waiting.set(id, (socket, peeked) => {
      clearTimeout(timer);
      this.#waiting.delete(id);
      this.#taken++;
      taken = socket;
      settle?.resolve({ socket, tls: { ...this.#tls, role: 'server', alpn: dataAlpn(id), peeked, streamKey: key } });
    });
    return {
      id,
      key,
      connection,
      cancel: () => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        settle?.reject(new DotmeshError('UNAVAILABLE', `commit stream ${id} is no longer expected`));
        taken?.destroy();
      },
    };
  }

  /**
   * The taker of a connection whose ClientHello offers exactly `alpn`: the one protocol naming a
   * waiting stream. The stream stops waiting at once (single use). Undefined for anything else.
   */
  take(alpn: readonly string[]): ((socket: Socket, peeked: Buffer) => void) | undefined {
    const only = alpn.length === 1 ? alpn[0] : undefined;
    if (only === undefined || !only.startsWith(ALPN_PREFIX)) return undefined;
    const id = only.slice(ALPN_PREFIX.length);
    if (!ID_PATTERN.test(id)) return undefined;
    const taker = this.#waiting.get(id);
    this.#waiting.delete(id);
    return taker;
  }

  /** Whether `alpn` names a data connection at all (a made-up id included): such a hello is never Node's. */
  static claims(alpn: readonly string[]): boolean {
    return alpn.some((p) => p.startsWith(ALPN_PREFIX));
  }
}
