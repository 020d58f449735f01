import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { type ServerConfig, serverCertificateFile } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';

/**
 * The pin (`sha256:<hex>` of its public key) of the cluster CA that issued the server's HTTPS
 * certificate; null when the server serves no HTTPS or a given certificate.
 */
export async function clusterCaPin(config: ServerConfig): Promise<string | null> {
  if (config.tlsPort === 0 || config.tlsCertFile !== null) return null;
  const { publicKeyPin } = await import('@dotmesh/rpc/tls');
  try {
    return publicKeyPin(new X509Certificate(await readFile(join(config.stateDir, 'tls', 'ca.pem'))));
  } catch {
    return null;
  }
}

/**
 * After `dm cluster init` brought the server up: the SHA-256 fingerprint of the certificate it
 * serves on `tlsPort` (read from the file the server uses, now that it is running), pinned in
 * known_servers for `host:tlsPort` so that an https remote to this host works without a
 * prompt. The `local` remote itself stays plain http, as the original's. Null: no HTTPS.
 */
export async function pinLocalServer(ctx: CommandContext, config: ServerConfig, host: string): Promise<string | null> {
  if (config.tlsPort === 0) return null;
  const file = serverCertificateFile(config);
  let fingerprint: string;
  try {
    fingerprint = new X509Certificate(await readFile(file)).fingerprint256;
  } catch (e) {
    // The server is up; a server that serves no HTTPS (an older --server-bin) is no reason to fail.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      ctx.reporter.notice(`No TLS certificate at ${file}: this dotmesh-server serves no HTTPS.`);
      return null;
    }
    throw new DotmeshError('INTERNAL', `cannot read the server's TLS certificate ${file}: ${(e as Error).message}`);
  }
  const known = await ctx.knownServers();
  known.set(host, config.tlsPort, { kind: 'pin', fingerprint });
  await known.save();
  return fingerprint;
}
