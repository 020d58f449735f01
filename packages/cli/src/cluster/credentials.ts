import { randomBytes } from 'node:crypto';
import { base32 } from '@dotmesh/core';

export { base32 };

/**
 * Initial admin credentials, generated as the original `dm cluster init` did: the password is
 * RandToken(32) = base32 of 20 random bytes (32 characters); the API key is base32 of 32 random
 * bytes, as the original server's user API keys (Go StdEncoding, so padded with `=`).
 */
export interface AdminCredentials {
  readonly password: string;
  readonly apiKey: string;
}

export function generateAdminCredentials(random: (n: number) => Uint8Array = randomBytes): AdminCredentials {
  return { password: base32(random(20)), apiKey: base32(random(32)) };
}
