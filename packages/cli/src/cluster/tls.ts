import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { type ServerConfig, serverCertificateFile } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';
import type { KnownTrust } from '../known-servers.ts';

/**
 * The pin (`sha256:<hex>` of its public key) of the cluster CA that issued the server's HTTPS
 * certificate; null when the server serves no HTTPS or a given certificate.
 */
export async function clusterCaPin(config: ServerConfig): Promise<string | null> {
  const ca = await clusterCa(config);
  if (ca === null) return null;
  const { publicKeyPin } = await import('@dotmesh/rpc/tls');
  return publicKeyPin(ca);
}

/** The cluster CA that issues the server's HTTPS certificate; null: no HTTPS, a given certificate, or no readable CA. */
async function clusterCa(config: ServerConfig): Promise<X509Certificate | null> {
  if (config.tlsPort === 0 || config.tlsCertFile !== null) return null;
  try {
    return new X509Certificate(await readFile(join(config.stateDir, 'tls', 'ca.pem')));
  } catch {
    return null;
  }
}

/** The server's HTTPS certificate as `dm cluster init` / `start` pinned it for this host. */
export interface LocalPin {
  /** SHA-256 fingerprint of the certificate the server serves. */
  readonly fingerprint: string;
  /**
   * The cluster CA pin saved in known_servers (`cluster-ca:<pin>`) when the cluster CA issued
   * that certificate; null when the certificate itself is pinned (a given certificate).
   */
  readonly caPin: string | null;
}

/**
 * After `dm cluster init` or `start` brought the server up: pins, in known_servers for
 * `host:tlsPort`, the certificate it serves on `tlsPort` (read from the file the server uses,
 * now that it is running), so that an https remote to this host works without a prompt. A
 * certificate the cluster CA issued (the generated one) is pinned by that CA, as `dm remote
 * add --trust-ca` does, so the pin survives the certificate being issued again; a given
 * certificate (`--tls-cert`) is pinned by its own fingerprint. The `local` remote itself stays
 * plain http, as the original's. Null: no HTTPS.
 */
export async function pinLocalServer(ctx: CommandContext, config: ServerConfig, host: string): Promise<LocalPin | null> {
  if (config.tlsPort === 0) return null;
  const file = serverCertificateFile(config);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await readFile(file));
  } catch (e) {
    // The server is up; a server that serves no HTTPS (an older --server-bin) is no reason to fail.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      ctx.reporter.notice(`No TLS certificate at ${file}: this dotmesh-server serves no HTTPS.`);
      return null;
    }
    throw new DotmeshError('INTERNAL', `cannot read the server's TLS certificate ${file}: ${(e as Error).message}`);
  }
  const caPin = await issuingClusterCaPin(config, cert);
  const trust: KnownTrust = caPin === null ? { kind: 'pin', fingerprint: cert.fingerprint256 } : { kind: 'cluster-ca', caPin };
  const known = await ctx.knownServers();
  known.set(host, config.tlsPort, trust);
  await known.save();
  return { fingerprint: cert.fingerprint256, caPin };
}

/** The cluster CA's pin when that CA issued and signed `cert`; null otherwise (or no CA here). */
async function issuingClusterCaPin(config: ServerConfig, cert: X509Certificate): Promise<string | null> {
  const ca = await clusterCa(config);
  if (ca === null || !cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return null;
  const { publicKeyPin } = await import('@dotmesh/rpc/tls');
  return publicKeyPin(ca);
}
