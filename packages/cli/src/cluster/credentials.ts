import { randomBytes } from 'node:crypto';

/**
 * Initial admin credentials, generated as the original `dm cluster init` did: the password is
 * RandToken(32) = base32 of 20 random bytes (32 characters); the API key is base32 of 32 random
 * bytes, as the original server's user API keys (Go StdEncoding, so padded with `=`).
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 with padding (Go's base32.StdEncoding). */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out.padEnd(Math.ceil(out.length / 8) * 8, '=');
}

export interface AdminCredentials {
  readonly password: string;
  readonly apiKey: string;
}

export function generateAdminCredentials(random: (n: number) => Uint8Array = randomBytes): AdminCredentials {
  return { password: base32(random(20)), apiKey: base32(random(32)) };
}
