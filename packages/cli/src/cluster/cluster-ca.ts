import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';

/**
 * `dm cluster init --cluster-ca-cert <file> --cluster-ca-key <file>`: gives a node the CA of
 * the cluster it joins. The server keeps its PKI in `<stateDir>/tls/` (ca.pem, ca-key.pem;
 * see the server's tls/pki.ts): a node whose CA is the cluster's issues itself a certificate
 * of that CA for the node-to-node endpoint, which is how nodes recognise each other. This is a
 * temporary way to join: joining with tokens will replace it.
 *
 * Contracts: the certificate must be a CA certificate and the key its private key (checked
 * before anything is written); the files are copied atomically, the key 0600 in a 0700
 * directory. Returns whether the node's CA changed (its HTTPS certificate is then issued again
 * by the new CA, with a new fingerprint).
 */
export interface ClusterCaFiles {
  readonly cert: string;
  readonly key: string;
}

export async function installClusterCa(stateDir: string, files: ClusterCaFiles): Promise<{ changed: boolean }> {
  const bad = (why: string) =>
    new DotmeshError('INVALID_ARGUMENT', why, {
      hint: "give the ca.pem and ca-key.pem of the cluster's first node (<its pool dir>/server/tls/)",
    });
  const read = async (file: string) => {
    try {
      return await readFile(file);
    } catch (e) {
      throw bad(`cannot read ${file}: ${(e as Error).message}`);
    }
  };
  const [certPem, keyPem] = await Promise.all([read(files.cert), read(files.key)]);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw bad(`${files.cert} is not a PEM certificate`);
  }
  if (!cert.ca) throw bad(`${files.cert} is not a CA certificate (${cert.subject.replaceAll('\n', ', ')})`);
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    throw bad(`${files.key} is not a PEM private key`);
  }
  if (!matches) throw bad(`${files.key} is not the private key of ${files.cert}`);
  const dir = join(stateDir, 'tls');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const caFile = join(dir, 'ca.pem');
  const changed = !(await sameCertificate(caFile, cert));
  await writeAtomically(join(dir, 'ca-key.pem'), keyPem, 0o600);
  await writeAtomically(caFile, certPem, 0o644);
  return { changed };
}

async function writeAtomically(file: string, data: Buffer, mode: number): Promise<void> {
  const tmp = `${file}.new`;
  await writeFile(tmp, data, { mode });
  await chmod(tmp, mode);
  await rename(tmp, file);
}

async function sameCertificate(file: string, cert: X509Certificate): Promise<boolean> {
  try {
    return new X509Certificate(await readFile(file)).raw.equals(cert.raw);
  } catch {
    return false;
  }
}
