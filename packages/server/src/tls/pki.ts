import { randomBytes, X509Certificate } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { networkInterfaces, hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { publicKeyPin } from '@dotmesh/rpc/tls';
import type { Exec } from '@dotmesh/storage';

/**
 * The per-cluster PKI in `<stateDir>/tls/`: a CA (ca.pem, ca-key.pem) and the server's
 * certificate signed by it (server.pem, server-key.pem), all made with the `openssl` CLI
 * through the exec choke point (ECDSA P-256, SHA-256).
 *
 * Contracts:
 * - Idempotent: the CA is made once and kept; the server certificate is kept while it is
 *   signed by that CA, covers every required name and has more than 30 days left, else it is
 *   issued again for `subjectAltNames` (its fingerprint then changes, and clients that pinned
 *   it must pin again). The required names are the stable ones (the configured names and the
 *   loopback names), not everything a host has now: an address that appears later (a new
 *   interface, a container bridge, another DHCP lease) does not change the cluster's identity.
 * - Private keys are created in the 0700 directory as 0600 files before openssl writes into
 *   them; no secret is ever on a command line. Files are replaced atomically (rename).
 */
export interface ClusterPkiFiles {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
  /** The server certificate followed by the CA, as the TLS port sends it (for the pumps' TLS). */
  readonly chain: string;
}

export function pkiFiles(stateDir: string): ClusterPkiFiles {
  const dir = join(stateDir, 'tls');
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca-key.pem'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server-key.pem'),
    chain: join(dir, 'server-chain.pem'),
  };
}

/** The names every generated certificate covers, whatever the host's interfaces. */
export const LOOPBACK_NAMES: readonly string[] = ['127.0.0.1', '::1', 'localhost'];

/** 127.0.0.1, ::1, localhost, the host name and the host's addresses, then the extras; no duplicates. */
export function defaultSubjectAltNames(extra: readonly string[] = []): string[] {
  const names = [...LOOPBACK_NAMES, osHostname()];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (!a.address.startsWith('fe80:')) names.push(a.address);
  }
  return [...new Set([...names, ...extra].filter((n) => n !== ''))];
}

/** The SAN list as openssl's config syntax: `IP:1.2.3.4,DNS:host`. */
export function sanExtension(names: readonly string[]): string {
  return names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
}

/** The SANs of a certificate as `IP:…`/`DNS:…` entries (Node writes IPv6 expanded; both forms are compared). */
function certificateCovers(cert: X509Certificate, names: readonly string[]): boolean {
  const sans = (cert.subjectAltName ?? '').split(', ').map((s) => s.replace(/^IP Address:/, 'IP:'));
  const have = new Set(sans.map((s) => (s.startsWith('IP:') ? `IP:${canonicalIp(s.slice(3))}` : s)));
  return names.every((n) => have.has(isIP(n) ? `IP:${canonicalIp(n)}` : `DNS:${n}`));
}

function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname;
  } catch {
    return ip;
  }
}

const DAY_MS = 86_400_000;

/**
 * Makes (or keeps) the CA and the server certificate; returns the files. A new certificate
 * names `subjectAltNames`; an existing one is kept while it covers `requiredNames` (default:
 * all of `subjectAltNames`).
 */
export async function ensureClusterPki(o: {
  readonly stateDir: string;
  readonly exec: Exec;
  readonly subjectAltNames: readonly string[];
  readonly requiredNames?: readonly string[];
  readonly now?: () => Date;
}): Promise<ClusterPkiFiles & { readonly issued: boolean }> {
  const f = pkiFiles(o.stateDir);
  const now = (o.now ?? (() => new Date()))();
  await mkdir(f.dir, { recursive: true, mode: 0o700 });
  await chmod(f.dir, 0o700);
  let ca = await readCert(f.caCert);
  let caKeyThere = await readFile(f.caKey).then(
    () => true,
    () => false,
  );
  // A node that joined a cluster holds the cluster's CA certificate without its key: that CA
  // stays (its certificates were issued by the node that let it join).
  if (!ca) {
    await makeCa(o.exec, f);
    ca = await readCert(f.caCert);
    caKeyThere = true;
  }
  if (!ca) throw new DotmeshError('INTERNAL', `openssl made no readable CA certificate in ${f.caCert}`);
  const current = await readCert(f.cert);
  const keep =
    current?.checkIssued(ca) === true &&
    current.verify(ca.publicKey) &&
    new Date(current.validTo).getTime() - now.getTime() > 30 * DAY_MS &&
    certificateCovers(current, o.requiredNames ?? o.subjectAltNames);
  if (!keep && !caKeyThere) {
    throw new DotmeshError('POOL_UNAVAILABLE', `cannot issue this node's HTTPS certificate: no CA key in ${f.caKey}`, {
      hint: 'join the cluster again with a new token (dm cluster token create on a node holding the CA key, then dm cluster join), or copy the CA key here (dm cluster copy-ca)',
    });
  }
  if (!keep) await issueServerCert(o.exec, f, o.subjectAltNames);
  return { ...f, issued: !keep };
}

async function readCert(file: string): Promise<X509Certificate | null> {
  try {
    return new X509Certificate(await readFile(file));
  } catch {
    return null;
  }
}

/** An empty 0600 file for openssl to write a private key into (it keeps the mode). */
async function privateFile(path: string): Promise<void> {
  await rm(path, { force: true });
  const fh = await open(path, 'wx', 0o600);
  await fh.close();
  await chmod(path, 0o600);
}

async function genKey(exec: Exec, path: string): Promise<void> {
  await privateFile(path);
  await exec.run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
  await chmod(path, 0o600);
}

async function makeCa(exec: Exec, f: ClusterPkiFiles): Promise<void> {
  const key = `${f.caKey}.new`;
  const cert = `${f.caCert}.new`;
  await genKey(exec, key);
  await exec.run('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    key,
    '-sha256',
    '-days',
    '3650',
    '-subj',
    `/O=dotmesh/CN=dotmesh cluster CA ${randomBytes(4).toString('hex')}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    cert,
  ]);
  await rename(key, f.caKey);
  await rename(cert, f.caCert);
}

async function issueServerCert(exec: Exec, f: ClusterPkiFiles, names: readonly string[]): Promise<void> {
  const cn = names.find((n) => !isIP(n) && n !== 'localhost') ?? 'localhost';
  await issueLeaf(exec, f, { key: f.key, cert: f.cert, cn, names, usage: 'serverAuth' });
}

/** The extensions of a leaf certificate (openssl -extfile syntax). */
function leafExtensions(names: readonly string[], usage: string): string {
  return [
    ...(names.length > 0 ? [`subjectAltName=${sanExtension(names)}`] : []),
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    `extendedKeyUsage=${usage}`,
    '',
  ].join('\n');
}

/** `openssl x509 -req`: the CA signs `csr` with the extensions in `ext` (and `subject` instead of the request's). */
async function signRequest(
  exec: Exec,
  f: ClusterPkiFiles,
  o: { csr: string; ext: string; out: string; subject?: string },
): Promise<void> {
  await exec.run('openssl', [
    'x509',
    '-req',
    '-in',
    o.csr,
    ...(o.subject === undefined ? [] : ['-subj', o.subject]),
    '-CA',
    f.caCert,
    '-CAkey',
    f.caKey,
    '-set_serial',
    serial(),
    '-days',
    '825',
    '-sha256',
    '-extfile',
    o.ext,
    '-out',
    o.out,
  ]);
}

/** A random positive 128-bit serial number. */
function serial(): string {
  return `0x${randomBytes(16)
    .toString('hex')
    .replace(/^[89a-f]/, '1')}`;
}

/** A certificate signed by the cluster CA (a fresh key, CN and SANs), replaced atomically. */
async function issueLeaf(
  exec: Exec,
  f: ClusterPkiFiles,
  o: { key: string; cert: string; cn: string; names: readonly string[]; usage: string },
): Promise<void> {
  const key = `${o.key}.new`;
  const base = o.cert.replace(/\.pem$/, '');
  const csr = `${base}.csr`;
  const ext = `${base}.ext`;
  const cert = `${o.cert}.new`;
  await genKey(exec, key);
  await exec.run('openssl', ['req', '-new', '-key', key, '-subj', `/O=dotmesh/CN=${o.cn.replace(/[/=]/g, '_')}`, '-out', csr]);
  await writeFile(ext, leafExtensions(o.names, o.usage), { mode: 0o600 });
  await signRequest(exec, f, { csr, ext, out: cert });
  await rm(csr, { force: true });
  await rm(ext, { force: true });
  await rename(key, o.key);
  await rename(cert, o.cert);
}

/** This node's certificate for the node-to-node endpoint, in `<stateDir>/tls/`. */
export interface NodeCertFiles {
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * Makes (or keeps) this node's certificate for mutual TLS between nodes: signed by the cluster
 * CA (which must be there: `dm cluster init` makes it, or copies the cluster's), subject CN =
 * the node id, SANs = the addresses other nodes dial, usable as server and client. Kept while
 * signed by that CA, naming this node id and its addresses, with more than 30 days left.
 */
export async function ensureNodeCert(o: {
  readonly stateDir: string;
  readonly exec: Exec;
  readonly nodeId: string;
  readonly addresses: readonly string[];
  readonly now?: () => Date;
  /** The certificate's file name in `<stateDir>/tls/` (default `node`: node.pem, node-key.pem). */
  readonly name?: string;
}): Promise<NodeCertFiles & { readonly issued: boolean }> {
  const f = pkiFiles(o.stateDir);
  const name = o.name ?? 'node';
  const files = { caCert: f.caCert, cert: join(f.dir, `${name}.pem`), key: join(f.dir, `${name}-key.pem`) };
  const ca = await readCert(f.caCert);
  const caKeyThere = await readFile(f.caKey).then(
    () => true,
    () => false,
  );
  if (!ca) {
    throw new DotmeshError('POOL_UNAVAILABLE', `no cluster CA in ${f.caCert}: the node-to-node endpoint needs one`, {
      hint: "make it with 'dm cluster init', or copy the cluster's CA there",
    });
  }
  const now = (o.now ?? (() => new Date()))();
  const current = await readCert(files.cert);
  const keep =
    current?.checkIssued(ca) === true &&
    current.verify(ca.publicKey) &&
    current.subject.split('\n').includes(`CN=${o.nodeId}`) &&
    new Date(current.validTo).getTime() - now.getTime() > 30 * DAY_MS &&
    certificateCovers(current, o.addresses);
  if (keep) return { ...files, issued: false };
  if (!caKeyThere) {
    throw new DotmeshError('POOL_UNAVAILABLE', `cannot issue this node's certificate: no CA key in ${f.caKey}`, {
      hint: 'join the cluster again with a new token (dm cluster token create, then dm cluster join), or copy the CA key here (dm cluster copy-ca)',
    });
  }
  await issueLeaf(o.exec, f, {
    key: files.key,
    cert: files.cert,
    cn: o.nodeId,
    names: o.addresses,
    usage: 'serverAuth,clientAuth',
  });
  return { ...files, issued: true };
}

/** The SHA-256 of a certificate's SubjectPublicKeyInfo (DER) as `sha256:<hex>`: a CA's pin, as kubeadm's. */
export const caPublicKeyHash = publicKeyPin;

/** A new private key (0600) and a certificate request for it, in `dir`; returns the request (PEM). */
export async function makeKeyAndCsr(exec: Exec, keyFile: string, cn: string): Promise<string> {
  const csr = `${keyFile}.csr`;
  await genKey(exec, keyFile);
  await exec.run('openssl', ['req', '-new', '-key', keyFile, '-subj', `/O=dotmesh/CN=${cn.replace(/[/=]/g, '_')}`, '-out', csr]);
  try {
    return await readFile(csr, 'utf8');
  } finally {
    await rm(csr, { force: true });
  }
}

/**
 * Signs a certificate request another node sent with the cluster CA (which must be here):
 * its signature is checked, its subject is replaced by `/O=dotmesh/CN=<cn>`, its extensions by
 * ours (`names` as SANs, `usage`). Returns the certificate (PEM).
 */
export async function signCsr(
  exec: Exec,
  stateDir: string,
  o: { readonly csrPem: string; readonly cn: string; readonly names: readonly string[]; readonly usage: string },
): Promise<string> {
  const f = pkiFiles(stateDir);
  const base = join(f.dir, `sign-${randomBytes(8).toString('hex')}`);
  const csr = `${base}.csr`;
  const ext = `${base}.ext`;
  const out = `${base}.pem`;
  try {
    await writeFile(csr, o.csrPem, { mode: 0o600 });
    await writeFile(ext, leafExtensions(o.names, o.usage), { mode: 0o600 });
    const badRequest = () =>
      new DotmeshError('INVALID_ARGUMENT', 'the certificate request is not a valid, self-signed PEM CSR', {
        hint: 'make it with openssl req -new (dm cluster join does)',
      });
    // openssl x509 -req checks the request's self-signature.
    await exec.run('openssl', ['req', '-in', csr, '-noout']).catch(() => {
      throw badRequest();
    });
    await signRequest(exec, f, { csr, ext, out, subject: `/O=dotmesh/CN=${o.cn.replace(/[/=]/g, '_')}` }).catch((e: unknown) => {
      throw /self-signature|signature/i.test(String((e as Error).message)) ? badRequest() : e;
    });
    return await readFile(out, 'utf8');
  } finally {
    await Promise.all([csr, ext, out].map((p) => rm(p, { force: true })));
  }
}
