import type { Duplex } from 'node:stream';

/**
 * Commit streams on upgraded connections (transfer protocol v1, capability
 * STREAM_UPGRADE_CAPABILITY): `POST /transfer/v1/receive` (push) and `GET /transfer/v1/export`
 * (pull) with `Connection: Upgrade`, `Upgrade: dotmesh-commit-stream/1`. Refusals before the
 * stream (authentication, bad parameters, unknown commits) are ordinary HTTP answers with the
 * JSON error body of the other endpoints; otherwise the server answers `101 Switching
 * Protocols`, and the connection then carries, with no HTTP framing:
 *
 * - push: server → client: keep-alive spaces (one a second, until the answer), the go byte
 *   once the receiving storage driver owns the connection, then one JSON object — `{"ok":true}`
 *   once the commit is durable there, or `{"error":{…}}` — and the end of its side. Client →
 *   server: after the go byte, the framed commit stream (frames.ts), then nothing until it
 *   closes after the answer. An answer without a go byte means the stream is not wanted (a
 *   commit already there, or refused before it was read).
 * - pull: client → server: the go byte once the receiving driver owns the connection; server
 *   → client: then the framed stream, and the end of the connection (cut short, without the end
 *   frame, when the export fails).
 *
 * So the sender writes only once the receiver reads the socket through its own storage
 * process: on plain HTTP no byte of the commit is read or written by Node on either side.
 */
export const STREAM_UPGRADE = 'dotmesh-commit-stream/1';
/** "Send the stream now." */
export const STREAM_GO = '\n';
/** A push's receiver is still working. */
export const STREAM_KEEPALIVE = ' ';
export const KEEPALIVE_MS = 1000;
/** The largest answer a client reads. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** The 101 answer, with `headers` (names and values the caller's, never a peer's). */
export function switchingProtocols(headers: Readonly<Record<string, string>> = {}): string {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${STREAM_UPGRADE}\r\n${extra}\r\n`;
}

/** The longest line a receiver sends instead of the go byte (data-connections.ts). */
const MAX_GO_LINE = 200;

/** A whole HTTP response with a JSON body, on a connection that was not upgraded; then closed. */
export function rawJsonResponse(socket: Duplex, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  const reason = status === 401 ? 'Unauthorized' : status < 400 ? 'OK' : 'Error';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
  );
}

/**
 * What a push's client reads from the server after the 101: keep-alive spaces, at most one go
 * byte — or, with `o.line` (a data connection was agreed, data-connections.ts), at most one
 * line ending in the go byte, given to `onGo` without it — then the JSON answer up to the end
 * of the connection. Feed it the bytes as they come; `onGo` fires once.
 */
export class AnswerReader {
  #answer = '';
  #inAnswer = false;
  #sawGo = false;
  /** The go line so far (line mode, once its first byte came). */
  #line: string | undefined;
  readonly #lineMode: boolean;
  readonly #onGo: (line: string) => void;

  constructor(onGo: (line: string) => void, o: { readonly line?: boolean } = {}) {
    this.#onGo = onGo;
    this.#lineMode = o.line === true;
  }

  /** Throws on bytes that are neither keep-alives, the go byte nor an answer. */
  feed(chunk: Buffer): void {
    if (this.#inAnswer) {
      this.#append(chunk.toString('utf8'));
      return;
    }
    for (let i = 0; i < chunk.length; i++) {
      const c = String.fromCharCode(chunk[i] ?? 0);
      if (this.#line !== undefined) {
        if (c !== STREAM_GO) {
          this.#line += c;
          if (this.#line.length > MAX_GO_LINE) throw new Error('oversized go line');
          continue;
        }
        const line = this.#line;
        this.#line = undefined;
        this.#sawGo = true;
        this.#onGo(line);
        continue;
      }
      if (c === STREAM_KEEPALIVE) continue;
      if (c === STREAM_GO && !this.#sawGo && !this.#lineMode) {
        this.#sawGo = true;
        this.#onGo('');
        continue;
      }
      if (this.#lineMode && !this.#sawGo && /^[0-9a-f]$/.test(c)) {
        this.#line = c;
        continue;
      }
      if (c !== '{') throw new Error(`unexpected byte ${JSON.stringify(c)} before the answer`);
      this.#inAnswer = true;
      this.#append(chunk.subarray(i).toString('utf8'));
      return;
    }
  }

  /** The answer, once whole: a JSON object that parses (else undefined). */
  answer(): Record<string, unknown> | undefined {
    if (!this.#inAnswer) return undefined;
    try {
      const v = JSON.parse(this.#answer) as unknown;
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }

  get text(): string {
    return this.#answer;
  }

  #append(s: string): void {
    this.#answer += s;
    if (this.#answer.length > MAX_ANSWER_BYTES) throw new Error('oversized answer');
  }
}
