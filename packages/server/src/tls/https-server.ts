import { X509Certificate } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { Server as NetServer } from 'node:net';
import { DotmeshError } from '@dotmesh/core';
import { type Exec, ExecError } from '@dotmesh/storage';
import type { ApiRoutes } from '../http/servers.ts';
import { apiRequestHandler, handleUpgrades } from '../http/servers.ts';
import type { Logger } from '../log.ts';
import { defaultSubjectAltNames, ensureClusterPki, LOOPBACK_NAMES, pkiFiles } from './pki.ts';

/**
 * The API over HTTPS: the same routes as the plain HTTP API port, on `tlsPort`, with either a
 * given certificate or the cluster's generated one (pki.ts), sent with the cluster CA after it.
 * Clients pin the certificate's SHA-256 fingerprint (seen in the handshake), the cluster CA's
 * public key, or trust it through a CA.
 */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** SHA-256 of the leaf certificate's DER, `AB:CD:…`. */
  readonly fingerprint: string;
  readonly certFile: string;
  /**
   * Files of the same certificate (PEM chain, as sent) and key for TLS ended outside Node: the
   * pumps' data connections (shared-tls-port.ts).
   */
  readonly chainFile: string;
  readonly keyFile: string;
  readonly generated: boolean;
}

/**
 * Reads the given certificate, or makes/keeps the generated one: issued for the loopback
 * names, the host's name and addresses and `subjectAltNames`; kept across restarts while it
 * covers the loopback names and `subjectAltNames` (the configured ones), so the fingerprint
 * clients pinned stays valid when the host gains an address.
 */
export async function loadTlsMaterial(o: {
  readonly stateDir: string;
  readonly certFile: string | null;
  readonly keyFile: string | null;
  readonly subjectAltNames: readonly string[];
  readonly exec: Exec;
}): Promise<TlsMaterial> {
  let certFile = o.certFile;
  let keyFile = o.keyFile;
  const generated = certFile === null || keyFile === null;
  if (certFile === null || keyFile === null) {
    const pki = await ensureClusterPki({
      stateDir: o.stateDir,
      exec: o.exec,
      subjectAltNames: defaultSubjectAltNames(o.subjectAltNames),
      requiredNames: [...LOOPBACK_NAMES, ...o.subjectAltNames],
    }).catch((e: unknown) => {
      if (!(e instanceof ExecError && e.spawnErrno === 'ENOENT')) throw e;
      throw new DotmeshError('UNAVAILABLE', 'cannot make the cluster TLS certificate: the openssl command is not installed', {
        hint: 'install openssl (apt-get install openssl), give a certificate (tlsCertFile, tlsKeyFile), or set tlsPort to 0',
        cause: e,
      });
    });
    certFile = pki.cert;
    keyFile = pki.key;
  }
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (e) {
      throw new DotmeshError('INVALID_ARGUMENT', `cannot read the TLS ${what} ${file}: ${(e as Error).message}`);
    }
  };
  const leafPem = await read(certFile, 'certificate');
  const key = await read(keyFile, 'key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (e) {
    throw new DotmeshError('INVALID_ARGUMENT', `${certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  // A generated certificate goes out with the cluster CA after it, so clients can pin the CA.
  const cert = generated
    ? Buffer.concat([leafPem, Buffer.from('\n'), await read(pkiFiles(o.stateDir).caCert, 'CA certificate')])
    : leafPem;
  let chainFile = certFile;
  if (generated) {
    chainFile = pkiFiles(o.stateDir).chain;
    // Written only when it changed (a reissued leaf or CA): a restart leaves the file as it was.
    const current = await readFile(chainFile).catch(() => undefined);
    if (!current?.equals(cert)) await writeFileAtomic(chainFile, cert);
  }
  return { cert, key, fingerprint: leaf.fingerprint256, certFile, chainFile, keyFile, generated };
}

export function createHttpsApiServer(routes: ApiRoutes, logger: Logger, material: TlsMaterial): Server {
  let server: Server;
  try {
    server = createServer({ cert: material.cert, key: material.key, minVersion: 'TLSv1.2' }, apiRequestHandler(routes, logger));
  } catch (e) {
    throw new DotmeshError('INVALID_ARGUMENT', `cannot serve HTTPS with ${material.certFile}: ${(e as Error).message}`, {
      hint: 'tlsKeyFile must hold the private key of tlsCertFile (PEM)',
    });
  }
  handleUpgrades(server, routes, logger);
  server.requestTimeout = 0; // as the HTTP server (http/servers.ts): transfers may take hours
  server.headersTimeout = 30_000;
  return server;
}

export async function listenTls(server: NetServer, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as { port: number }).port;
}

/** Writes `data` to `file` through a temporary file and a rename (readers never see half of it). */
async function writeFileAtomic(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode: 0o644 });
  await rename(tmp, file);
}
