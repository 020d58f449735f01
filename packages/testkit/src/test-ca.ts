import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './process.ts';

/**
 * A throwaway certificate authority for tests, made with the openssl CLI: EC P-256 keys,
 * certificates valid 2 days. Files live in `dir`: `ca.pem`/`ca.key`, and `<name>.pem`/`<name>.key`
 * per signed certificate.
 */
export interface TestCa {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  /**
   * Signs a new key pair for `subject` (`/O=group/CN=name`) with openssl x509 extension lines
   * `ext` (subjectAltName, extendedKeyUsage...). Returns the certificate and key paths. Safe to
   * call concurrently (nodes added together): each certificate gets a random serial, so no
   * serial file is shared.
   */
  sign(name: string, subject: string, ext: string): Promise<{ cert: string; key: string }>;
}

const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export async function makeTestCa(dir: string, commonName: string): Promise<TestCa> {
  const f = (name: string) => join(dir, name);
  await runCommand('openssl', [
    'req',
    '-x509',
    ...KEY_ARGS,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    `/CN=${commonName}`,
  ]);
  return openTestCa(dir);
}

/** The CA `makeTestCa` made earlier in `dir` (e.g. by another process), to sign more certificates. */
export function openTestCa(dir: string): TestCa {
  const f = (name: string) => join(dir, name);
  return {
    dir,
    caCert: f('ca.pem'),
    caKey: f('ca.key'),
    async sign(name, subject, ext) {
      await writeFile(f(`${name}.ext`), ext);
      await runCommand('openssl', ['req', ...KEY_ARGS, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subject]);
      await runCommand('openssl', [
        'x509',
        '-req',
        '-in',
        f(`${name}.csr`),
        '-CA',
        f('ca.pem'),
        '-CAkey',
        f('ca.key'),
        '-set_serial',
        randomSerial(),
        '-out',
        f(`${name}.pem`),
        '-days',
        '2',
        '-extfile',
        f(`${name}.ext`),
      ]);
      return { cert: f(`${name}.pem`), key: f(`${name}.key`) };
    },
  };
}

/** A random positive 127-bit serial (RFC 5280: at most 20 octets, positive), in openssl's hex form. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return `0x${bytes.toString('hex')}`;
}
