import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  randomBytes,
  scrypt as scryptCb,
  timingSafeEqual,
} from 'node:crypto';
import { promisify } from 'node:util';
import { base32 } from '@dotmesh/core';

/**
 * The cryptography of user credentials; the store holds only what these functions derive.
 *
 * - Password: scrypt with the original's parameters (N=32768, r=8, p=1, 32-byte salt). It is
 *   run for 64 bytes: the first 32 are the original's 32-byte hash (scrypt's output is
 *   PBKDF2 blocks, so a longer output starts with the shorter one), kept as the verifier, so
 *   the original's hashes verify unchanged. The last 32 never leave memory: through HKDF
 *   they give the **unlock key** that seals the API key. One scrypt run does both.
 * - API key: random (the original's base32 of 32 bytes), so a fast verifier is enough:
 *   HMAC-SHA-256 keyed with a random 32-byte salt per key, over the user id and the key.
 *   Checked on every request, it costs microseconds.
 * - Sealed API key: AES-256-GCM under the unlock key, with a random 96-bit nonce; the
 *   authenticated data binds it to the user id and to the key's verifier.
 */
const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, keylen: number, opts: object) => Promise<Buffer>;

/** The original's scrypt parameters. maxmem: 128·N·r = 32 MiB are needed. */
const SCRYPT = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const SALT_BYTES = 32;
const HASH_BYTES = 32;
/** Random bytes in an API key: the original's 32 (256 bits), written base32 with padding. */
export const API_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

const HMAC_CONTEXT = 'dotmesh api key verifier v1';
const SEAL_CONTEXT = 'dotmesh api key seal v1';

/** The original's token format: base32 (padded) of `bytes` random bytes. */
export function randomToken(bytes: number): string {
  return base32(randomBytes(bytes));
}

/** What one scrypt run of a password gives: the stored hash, and the unlock key (memory only). */
export interface PasswordDerivation {
  /** The verifier (hex): the original's 32-byte scrypt hash. */
  readonly hash: string;
  readonly unlockKey: Buffer;
}

export async function derivePassword(password: string, saltHex: string, userId: string): Promise<PasswordDerivation> {
  const out = await scrypt(password, Buffer.from(saltHex, 'hex'), HASH_BYTES * 2, SCRYPT);
  const unlockKey = Buffer.from(hkdfSync('sha256', out.subarray(HASH_BYTES), Buffer.alloc(0), `${SEAL_CONTEXT}\0${userId}`, 32));
  return { hash: out.subarray(0, HASH_BYTES).toString('hex'), unlockKey };
}

/** A new salt and hash for a password, and its unlock key. */
export async function newPassword(password: string, userId: string): Promise<PasswordDerivation & { salt: string }> {
  const salt = randomBytes(SALT_BYTES).toString('hex');
  return { salt, ...(await derivePassword(password, salt, userId)) };
}

/** Constant-time comparison of two hex strings (empty or malformed ones never match). */
export function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length > 0 && x.length === y.length && timingSafeEqual(x, y);
}

/** The verifier of an API key: a random salt and the HMAC (both hex). */
export interface ApiKeyVerifier {
  readonly salt: string;
  readonly hmac: string;
}

export function apiKeyHmac(apiKey: string, userId: string, saltHex: string): string {
  return createHmac('sha256', Buffer.from(saltHex, 'hex'))
    .update(`${HMAC_CONTEXT}\0${userId}\0`)
    .update(apiKey, 'utf8')
    .digest('hex');
}

export function newApiKeyVerifier(apiKey: string, userId: string): ApiKeyVerifier {
  const salt = randomBytes(SALT_BYTES).toString('hex');
  return { salt, hmac: apiKeyHmac(apiKey, userId, salt) };
}

export function apiKeyMatches(apiKey: string, userId: string, verifier: ApiKeyVerifier): boolean {
  if (verifier.salt === '' || verifier.hmac === '') return false;
  return sameHex(apiKeyHmac(apiKey, userId, verifier.salt), verifier.hmac);
}

function sealContext(userId: string, verifier: ApiKeyVerifier): Buffer {
  return Buffer.from(`${SEAL_CONTEXT}\0${userId}\0${verifier.hmac}`);
}

/** The API key sealed under the unlock key: base64 of nonce ‖ ciphertext ‖ tag. */
export function sealApiKey(apiKey: string, unlockKey: Buffer, userId: string, verifier: ApiKeyVerifier): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', unlockKey, nonce);
  cipher.setAAD(sealContext(userId, verifier));
  const body = Buffer.concat([cipher.update(apiKey, 'utf8'), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
}

/** The sealed API key, or undefined when it does not open with this key (or is not a sealed key). */
export function openApiKey(sealed: string, unlockKey: Buffer, userId: string, verifier: ApiKeyVerifier): string | undefined {
  const raw = Buffer.from(sealed, 'base64');
  if (raw.length <= NONCE_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', unlockKey, raw.subarray(0, NONCE_BYTES));
    decipher.setAAD(sealContext(userId, verifier));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    const key = Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
    const text = key.toString('utf8');
    return apiKeyMatches(text, userId, verifier) ? text : undefined;
  } catch {
    return undefined;
  }
}
