import { DotmeshError } from '@dotmesh/core';
import { CA_PIN_RE, normalizeFingerprint } from '@dotmesh/rpc/tls';
import { PeerSide } from './peer-side.ts';
import { type Hello, PROTOCOL_NAME, PROTOCOL_VERSIONS } from './side.ts';

const HOST_PATTERN = /^[A-Za-z0-9.:[\]-]{1,253}$/;
/** Where the original looked for a remote given without a port, in order. */
const DEDUCED = [
  { https: true, port: 443 },
  { https: false, port: 80 },
  { https: false, port: 32607 },
] as const;

export interface PeerRequest {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly apiKey: string;
  /** Pinned certificate fingerprint ("" = none). */
  readonly certSha256: string;
  readonly https: boolean;
  /** Pin of the peer cluster's CA, `sha256:<hex>` ("" or absent = none). */
  readonly caPin?: string;
}

/**
 * Dials the peer of a transfer and exchanges capabilities. Scheme: https with the pin when one
 * is given, https verified by the system CAs when asked or on port 443, else plain http (the
 * original's transport); port 0 tries https:443, http:80, http:32607 as the original client
 * did. TLS verification is never skipped. The peer must speak protocol v1 and store commits
 * with the same driver kind.
 */
export async function connectPeer(
  r: PeerRequest,
  local: {
    readonly driver: string;
    readonly idleTimeoutMs: number;
    readonly streamUpgrade: boolean;
    readonly dataConnections?: boolean;
  },
): Promise<{ side: PeerSide; hello: Hello }> {
  if (!HOST_PATTERN.test(r.host))
    throw new DotmeshError('INVALID_ARGUMENT', `invalid peer host ${JSON.stringify(r.host.slice(0, 100))}`);
  if (!Number.isInteger(r.port) || r.port < 0 || r.port > 65535)
    throw new DotmeshError('INVALID_ARGUMENT', `invalid peer port ${r.port}`);
  if (r.user === '' || r.apiKey === '') {
    throw new DotmeshError('INVALID_ARGUMENT', 'a transfer needs the peer user and API key', {
      hint: 'add the remote with dm remote add',
    });
  }
  const pin = r.certSha256 === '' ? undefined : normalizeFingerprint(r.certSha256);
  const caPin = r.caPin === undefined || r.caPin === '' ? undefined : r.caPin.toLowerCase();
  if (caPin !== undefined && !CA_PIN_RE.test(caPin)) {
    throw new DotmeshError('INVALID_ARGUMENT', `invalid PeerCaPin ${JSON.stringify(caPin.slice(0, 100))}`, {
      hint: 'sha256:<64 hex digits>, as dm cluster token create prints it',
    });
  }
  const host = r.host.includes(':') && !r.host.startsWith('[') ? `[${r.host}]` : r.host;
  const candidates =
    r.port !== 0
      ? [{ https: pin !== undefined || caPin !== undefined || r.https || r.port === 443, port: r.port }]
      : pin !== undefined || caPin !== undefined || r.https
        ? [{ https: true, port: 443 }]
        : DEDUCED;
  let lastError: unknown;
  for (const c of candidates) {
    const side = new PeerSide({
      baseUrl: `${c.https ? 'https' : 'http'}://${host}:${c.port}`,
      user: r.user,
      apiKey: r.apiKey,
      ...(c.https
        ? {
            tls: {
              ...(pin ? { pin, pinSource: 'the PeerCertSha256 of the transfer' } : {}),
              ...(caPin ? { caPin, pinSource: 'the PeerCaPin of the transfer' } : {}),
            },
          }
        : {}),
      idleTimeoutMs: local.idleTimeoutMs,
      streamUpgrade: local.streamUpgrade,
      dataConnections: local.dataConnections === true,
    });
    let hello: Hello;
    try {
      hello = await side.hello();
    } catch (e) {
      lastError = e;
      if (e instanceof DotmeshError && e.code === 'UNAVAILABLE' && candidates.length > 1) continue;
      throw e;
    }
    if (hello.protocol !== PROTOCOL_NAME || !hello.versions?.some((v) => (PROTOCOL_VERSIONS as readonly number[]).includes(v))) {
      throw new DotmeshError(
        'UNSUPPORTED',
        `${side.label} speaks no transfer protocol version this server knows (${PROTOCOL_VERSIONS.join(', ')})`,
        {
          hint: 'upgrade one of the two servers',
        },
      );
    }
    if (hello.driver !== local.driver) {
      throw new DotmeshError(
        'UNSUPPORTED',
        `${side.label} stores dots with the ${hello.driver} driver, this server with ${local.driver}: commits cannot move between them`,
      );
    }
    return { side, hello };
  }
  throw lastError instanceof Error ? lastError : new DotmeshError('UNAVAILABLE', `cannot reach ${r.host}`);
}
