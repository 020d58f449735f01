import { DotmeshError } from '@dotmesh/core';
import type { CommandContext } from '../context.ts';
import type { KnownTrust } from '../known-servers.ts';

/**
 * How `dm remote add … --https` decides to trust a server, before any credential is sent:
 * 1. `--trust-fingerprint F`: the certificate must be exactly F (else refused); F is pinned.
 *    `--trust-ca P`: the certificate must be issued by a CA the server sends whose public key
 *    has pin P (else refused); P is pinned (`cluster-ca`: any node of that cluster passes).
 * 2. a pin already in known_servers that matches (the certificate's fingerprint, or the
 *    cluster CA that issued it, as `dm cluster init` pins its own host): kept.
 * 3. a certificate the CAs vouch for (chain and host name): trusted through the CAs, no pin.
 * 4. otherwise the fingerprint is shown and the user asked `Trust it? [y/N]`; anything but
 *    y/yes, or end of input, refuses.
 */
export interface TlsDecision {
  readonly trust: KnownTrust;
  readonly fingerprint: string;
  /** The known_servers line is new or changed (to be saved once Ping succeeded). */
  readonly changed: boolean;
}

/** A `sha256:<64 hex>` CA pin (INVALID_ARGUMENT otherwise). */
export function checkCaPin(text: string): string {
  const pin = text.trim().toLowerCase();
  if (!/^sha256:[0-9a-f]{64}$/.test(pin)) {
    throw new DotmeshError('INVALID_ARGUMENT', `not a CA pin: ${JSON.stringify(text.slice(0, 100))}`, {
      hint: "give sha256:<64 hex digits>, as 'dm cluster token create' prints it",
    });
  }
  return pin;
}

export const UNTRUSTED_PREFIX = "The server's certificate is not trusted: SHA256 fingerprint";

export async function decideTls(
  ctx: CommandContext,
  host: string,
  port: number,
  trustFingerprint: string | undefined,
  trustCa?: string,
): Promise<TlsDecision> {
  const { probeCertificate, normalizeFingerprint, sameFingerprint } = await import('@dotmesh/rpc/tls');
  const wanted = trustFingerprint === undefined ? undefined : normalizeFingerprint(trustFingerprint);
  const caPin = trustCa === undefined ? undefined : checkCaPin(trustCa);
  const info = await probeCertificate(host, port);
  const known = (await ctx.knownServers()).get(host, port);
  const where = `${host}:${port}`;
  if (caPin !== undefined) {
    if (info.issuerPin !== caPin) {
      throw new DotmeshError(
        'PERMISSION_DENIED',
        `the TLS certificate of ${where} is not issued by the cluster CA ${caPin} given with --trust-ca (${info.issuerPin ? `its issuer is ${info.issuerPin}` : 'the server sent no CA that issued it'})`,
        {
          hint: "check the pin ('dm cluster token create' on a node of the cluster prints it); nothing was saved and no credential was sent",
        },
      );
    }
    return {
      trust: { kind: 'cluster-ca', caPin },
      fingerprint: info.fingerprint,
      changed: !(known?.kind === 'cluster-ca' && known.caPin === caPin),
    };
  }
  if (wanted !== undefined) {
    if (!sameFingerprint(wanted, info.fingerprint)) {
      throw new DotmeshError(
        'PERMISSION_DENIED',
        `the TLS certificate of ${where} has SHA256 fingerprint ${info.fingerprint}, not the ${wanted} given with --trust-fingerprint`,
        { hint: 'check the fingerprint with the server admin; nothing was saved and no credential was sent' },
      );
    }
    const trust: KnownTrust = { kind: 'pin', fingerprint: info.fingerprint };
    return {
      trust,
      fingerprint: info.fingerprint,
      changed: !(known?.kind === 'pin' && sameFingerprint(known.fingerprint, wanted)),
    };
  }
  if (known?.kind === 'pin' && sameFingerprint(known.fingerprint, info.fingerprint)) {
    return { trust: known, fingerprint: info.fingerprint, changed: false };
  }
  if (known?.kind === 'cluster-ca' && info.issuerPin === known.caPin) {
    return { trust: known, fingerprint: info.fingerprint, changed: false };
  }
  if (info.trustedByCa) return { trust: { kind: 'ca' }, fingerprint: info.fingerprint, changed: known?.kind !== 'ca' };
  const lines = [
    `${UNTRUSTED_PREFIX} ${info.fingerprint}`,
    ...(info.caError ? [`(${info.caError})`] : []),
    ...(known?.kind === 'pin' ? [`WARNING: it differs from the certificate pinned for ${where}: ${known.fingerprint}`] : []),
    'Trust it? [y/N] ',
  ];
  const answer = (await ctx.io.readLine(lines.join('\n'), { toStderr: ctx.reporter.json })) ?? '';
  if (!/^y(es)?$/i.test(answer.trim())) {
    throw new DotmeshError(
      'PERMISSION_DENIED',
      `not trusting the TLS certificate of ${where} (SHA256 fingerprint ${info.fingerprint})`,
      {
        hint: 'check the fingerprint with the server admin (`dm cluster init` prints it), then pass it with --trust-fingerprint',
      },
    );
  }
  return { trust: { kind: 'pin', fingerprint: info.fingerprint }, fingerprint: info.fingerprint, changed: true };
}
