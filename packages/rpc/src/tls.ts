import { createHash, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { DotmeshError } from '@dotmesh/core';

/**
 * TLS for the RPC client: how an https dotmesh-server's certificate is trusted.
 *
 * Contracts:
 * - A server is trusted either by a pin (the SHA-256 of its leaf certificate's DER, exactly; the
 *   chain and the host name are then not checked, as ssh's known_hosts), or by the pin of its
 *   cluster's CA (`caPin`: the SHA-256 of the CA's SubjectPublicKeyInfo, as kubeadm's; the server
 *   sends the CA after its leaf, and the leaf must be issued and signed by a CA of that key — any
 *   node of the cluster, and a reissued certificate, pass; the host name is not checked), or,
 *   without a pin, by the CA certificates Node trusts (its bundle and the system's) with the
 *   usual host name check.
 *   Verification is never skipped: the handshake runs with `rejectUnauthorized: false` only so
 *   that the decision (and a useful error naming the fingerprint) is ours, and it is taken on
 *   `secureConnect`, before the socket is handed to HTTP, so no request byte (no credential)
 *   reaches an untrusted server.
 * - Fingerprints are shown as OpenSSL and Node show them: upper-case hex pairs joined by colons.
 */
export interface TlsTrust {
  /** Pinned SHA-256 fingerprint of the server's leaf certificate (any case, colons optional). */
  readonly pin?: string;
  /** Where the pin came from, named in errors (e.g. ~/.dotmesh/known_servers). */
  readonly pinSource?: string;
  /** Pin of the cluster CA the server's certificate must be issued by, `sha256:<hex>`. */
  readonly caPin?: string;
}

/** A node's certificate and key, and the cluster CA every node's certificate is signed by (mutual TLS between the nodes of a cluster). */
export interface NodeTls {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** `sha256:<hex>` of a certificate's SubjectPublicKeyInfo (DER): a CA's pin. */
export function publicKeyPin(cert: X509Certificate): string {
  return `sha256:${createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
}

export const CA_PIN_RE = /^sha256:[0-9a-f]{64}$/;

/** `AB:CD:…` of a certificate's DER bytes. */
export function fingerprintOfDer(der: Uint8Array): string {
  return formatFingerprint(createHash('sha256').update(der).digest('hex'));
}

/** `ab12…` or `AB:12:…` (optionally `SHA256:`-prefixed) → `AB:12:…`; throws on anything but 32 bytes of hex. */
export function normalizeFingerprint(text: string): string {
  const hex = text
    .trim()
    .replace(/^sha-?256:?/i, '')
    .replace(/[:\s]/g, '')
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new DotmeshError('INVALID_ARGUMENT', `not a SHA-256 fingerprint: ${JSON.stringify(text.slice(0, 120))}`, {
      hint: 'give the 32 bytes as hex, e.g. AB:CD:… as `dm cluster init` prints it',
    });
  }
  return formatFingerprint(hex);
}

function formatFingerprint(hex: string): string {
  return (hex.toUpperCase().match(/../g) ?? []).join(':');
}

/** Do two fingerprints name the same certificate? (false when either is malformed) */
export function sameFingerprint(a: string, b: string): boolean {
  try {
    return normalizeFingerprint(a) === normalizeFingerprint(b);
  } catch {
    return false;
  }
}

/** What a TLS handshake showed about the server's certificate. */
export interface PeerCertificateInfo {
  readonly fingerprint: string;
  /** Chain and host name verified against the trusted CAs. */
  readonly trustedByCa: boolean;
  /** Why not (OpenSSL's code, e.g. SELF_SIGNED_CERT_IN_CHAIN, or the host name mismatch). */
  readonly caError: string | null;
  /** The pin of the CA certificate the server sent after its leaf, when that CA issued and signed the leaf. */
  readonly issuerPin?: string | null;
}

let trustedCas: string[] | undefined;
/** Node's bundled CAs plus the system's store, loaded once, on the first https connection. */
function caCertificates(): string[] {
  trustedCas ??= [...new Set([...tls.getCACertificates('default'), ...tls.getCACertificates('system')])];
  return trustedCas;
}

function peerInfo(socket: tls.TLSSocket): PeerCertificateInfo {
  const cert = socket.getPeerCertificate(true);
  if (!cert?.raw) throw new DotmeshError('UNAVAILABLE', 'the server sent no TLS certificate');
  const err = socket.authorizationError as unknown;
  return {
    fingerprint: fingerprintOfDer(cert.raw),
    trustedByCa: socket.authorized,
    caError: socket.authorized ? null : err instanceof Error ? err.message : String(err ?? 'not trusted'),
    issuerPin: issuerPin(cert.raw, cert.issuerCertificate?.raw),
  };
}

/** The pin of `issuerDer` when it is a CA that issued and signed `leafDer`; else null. */
export function issuerPin(leafDer: Uint8Array, issuerDer: Uint8Array | undefined): string | null {
  if (!issuerDer || Buffer.from(issuerDer).equals(Buffer.from(leafDer))) return null;
  try {
    const leaf = new X509Certificate(leafDer);
    const ca = new X509Certificate(issuerDer);
    return ca.ca && leaf.checkIssued(ca) && leaf.verify(ca.publicKey) ? publicKeyPin(ca) : null;
  } catch {
    return null;
  }
}

/** The decision on a handshake's outcome: null when trusted, else the error to fail with. */
export function trustError(host: string, port: number, info: PeerCertificateInfo, trust: TlsTrust): DotmeshError | null {
  const where = `${host}:${port}`;
  if (trust.caPin !== undefined) {
    if (info.issuerPin === trust.caPin) return null;
    return new DotmeshError(
      'PERMISSION_DENIED',
      `the TLS certificate of ${where} is not issued by the pinned cluster CA ${trust.caPin}${trust.pinSource ? ` (in ${trust.pinSource})` : ''}: ` +
        (info.issuerPin ? `its issuer is ${info.issuerPin}` : 'the server sent no CA that issued it'),
      {
        hint: 'check that the address is a node of that cluster; otherwise someone may be intercepting the connection',
        data: { presented: info.issuerPin ?? null, pinned: trust.caPin, fingerprint: info.fingerprint },
      },
    );
  }
  if (trust.pin !== undefined) {
    if (sameFingerprint(trust.pin, info.fingerprint)) return null;
    return new DotmeshError(
      'PERMISSION_DENIED',
      `the TLS certificate of ${where} does not match its pin: the server sent SHA256 fingerprint ${info.fingerprint}, ` +
        `pinned is ${safeFormat(trust.pin)}${trust.pinSource ? ` (in ${trust.pinSource})` : ''}`,
      {
        hint:
          'if the server was given a new certificate on purpose, remove its line from the known_servers file and ' +
          '`dm remote add` it again; otherwise someone may be intercepting the connection',
        data: { presented: info.fingerprint, pinned: safeFormat(trust.pin) },
      },
    );
  }
  if (info.trustedByCa) return null;
  return new DotmeshError(
    'PERMISSION_DENIED',
    `the TLS certificate of ${where} is not trusted (${info.caError}): SHA256 fingerprint ${info.fingerprint}`,
    {
      hint: 'check the fingerprint with the server admin (`dm cluster init` prints it), then pin it with `dm remote add <name> <user@host:port> --https --trust-fingerprint <fingerprint>`',
      data: { presented: info.fingerprint },
    },
  );
}

function safeFormat(pin: string): string {
  try {
    return normalizeFingerprint(pin);
  } catch {
    return pin;
  }
}

type ConnectOptions = tls.ConnectionOptions & { readonly host?: string | null; readonly port?: number | string | null };

/**
 * A `createConnection` for `https.request` that hands the socket to HTTP only after
 * `trustError` passed (see the contract at the top).
 */
export function verifiedConnection(
  trust: TlsTrust,
): (options: object, done: (err: Error | null, socket: Duplex) => void) => undefined {
  return (options, done) => {
    const o = options as ConnectOptions;
    const host = String(o.host ?? 'localhost').replace(/^\[(.*)\]$/, '$1');
    const port = Number(o.port ?? 443);
    const socket = tls.connect({
      ...o,
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      ca: caCertificates(),
      rejectUnauthorized: false,
    });
    let settled = false;
    const settle = (err: Error | null) => {
      if (settled) return;
      settled = true;
      socket.off('error', onError);
      if (err) socket.destroy();
      done(err, socket);
    };
    const onError = (e: Error) => settle(e);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      try {
        settle(trustError(host, port, peerInfo(socket), trust));
      } catch (e) {
        settle(e as Error);
      }
    });
    return undefined;
  };
}

/** Connects, reads the server's certificate and disconnects (`dm remote add`); sends nothing. */
export function probeCertificate(host: string, port: number, timeoutMs = 10_000): Promise<PeerCertificateInfo> {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: bare,
      port,
      ...(isIP(bare) ? {} : { servername: bare }),
      ca: caCertificates(),
      rejectUnauthorized: false,
    });
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new DotmeshError('UNAVAILABLE', `timed out after ${timeoutMs} ms in a TLS handshake with ${host}:${port}`)),
    );
    socket.once('error', (e) =>
      reject(
        e instanceof DotmeshError
          ? e
          : new DotmeshError('UNAVAILABLE', `cannot make a TLS connection to ${host}:${port}: ${e.message}`, {
              hint: 'is it the server’s TLS port (`tlsPort`, 32606 by default)?',
              cause: e,
            }),
      ),
    );
    socket.once('secureConnect', () => {
      try {
        resolve(peerInfo(socket));
      } catch (e) {
        reject(e);
      } finally {
        socket.end();
      }
    });
  });
}
