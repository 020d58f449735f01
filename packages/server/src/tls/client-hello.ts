/**
 * The ALPN protocols of a TLS ClientHello, read from the first bytes of a connection (RFC 8446
 * §4.1.2, §5.1; RFC 7301). Only what routing a connection needs: every length is checked
 * against what holds it, nothing is read beyond the first record, and the caller bounds how
 * many bytes (MAX_FIRST_RECORD_BYTES) and how long it waits.
 */

/** A TLS record header and the largest plaintext record (2^14 bytes). */
export const MAX_FIRST_RECORD_BYTES = 5 + 16384;

const RECORD_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_ALPN = 16;

/**
 * `more`: the first record is not whole yet (read more, up to MAX_FIRST_RECORD_BYTES);
 * `other`: not a ClientHello this parser reads whole from one record (plain HTTP, another TLS
 * message, a ClientHello spread over several records, a malformed one) — the connection is
 * someone else's to judge; `hello`: a ClientHello, with its ALPN protocols in order (empty when
 * it offers none).
 */
export type FirstRecord =
  | { readonly kind: 'more' }
  | { readonly kind: 'other' }
  | { readonly kind: 'hello'; readonly alpn: readonly string[] };

const OTHER: FirstRecord = { kind: 'other' };

export function readFirstRecord(buf: Buffer): FirstRecord {
  if (buf.length >= 1 && buf[0] !== RECORD_HANDSHAKE) return OTHER;
  if (buf.length >= 2 && buf[1] !== 3) return OTHER;
  if (buf.length < 5) return { kind: 'more' };
  const length = buf.readUInt16BE(3);
  if (length === 0 || length > MAX_FIRST_RECORD_BYTES - 5) return OTHER;
  if (buf.length < 5 + length) return { kind: 'more' };
  const alpn = helloAlpn(new Cursor(buf.subarray(5, 5 + length)));
  return alpn ? { kind: 'hello', alpn } : OTHER;
}

/** The ALPN list of a handshake message that must be a whole ClientHello; undefined when it is not one. */
function helloAlpn(record: Cursor): string[] | undefined {
  if (record.u8() !== HANDSHAKE_CLIENT_HELLO) return undefined;
  const hello = record.take(record.u24());
  if (!hello) return undefined;
  if (!hello.take(2 + 32)) return undefined; // legacy_version, random
  if (!hello.take(hello.u8())) return undefined; // legacy_session_id
  if (!hello.take(hello.u16())) return undefined; // cipher_suites
  if (!hello.take(hello.u8())) return undefined; // legacy_compression_methods
  if (hello.left === 0) return []; // no extensions at all
  const extensions = hello.take(hello.u16());
  if (!extensions || hello.left !== 0) return undefined;
  let alpn: string[] | undefined;
  while (extensions.left > 0) {
    const type = extensions.u16();
    const data = extensions.take(extensions.u16());
    if (type === undefined || !data) return undefined;
    if (type !== EXTENSION_ALPN) continue;
    if (alpn) return undefined; // the same extension twice is illegal
    alpn = protocolNames(data);
    if (!alpn) return undefined;
  }
  return alpn ?? [];
}

/** ProtocolNameList: a u16-long list of u8-long non-empty names. */
function protocolNames(data: Cursor): string[] | undefined {
  const list = data.take(data.u16());
  if (!list || data.left !== 0 || list.left === 0) return undefined;
  const names: string[] = [];
  while (list.left > 0) {
    const name = list.take(list.u8());
    if (!name || name.left === 0) return undefined;
    names.push(name.rest().toString('latin1'));
  }
  return names;
}

/** Reads a buffer front to back; every read past its end yields undefined (and later ones too). */
class Cursor {
  #buf: Buffer;
  #at = 0;
  #broken = false;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  get left(): number {
    return this.#broken ? -1 : this.#buf.length - this.#at;
  }

  u8(): number | undefined {
    return this.#int(1);
  }

  u16(): number | undefined {
    return this.#int(2);
  }

  u24(): number | undefined {
    return this.#int(3);
  }

  /** The next `n` bytes as a cursor of their own. */
  take(n: number | undefined): Cursor | undefined {
    if (n === undefined || this.#broken || this.#at + n > this.#buf.length) {
      this.#broken = true;
      return undefined;
    }
    const part = new Cursor(this.#buf.subarray(this.#at, this.#at + n));
    this.#at += n;
    return part;
  }

  rest(): Buffer {
    return this.#buf.subarray(this.#at);
  }

  #int(bytes: number): number | undefined {
    if (this.#broken || this.#at + bytes > this.#buf.length) {
      this.#broken = true;
      return undefined;
    }
    const v = this.#buf.readUIntBE(this.#at, bytes);
    this.#at += bytes;
    return v;
  }
}
