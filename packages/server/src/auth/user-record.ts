import { createHash } from 'node:crypto';
import type { SafeUser } from '@dotmesh/rpc';
import type { TxnOp } from '@dotmesh/store';
import { PREFIX, parseValue } from '../cluster/store-keys.ts';
import {
  type ApiKeyVerifier,
  apiKeyMatches,
  derivePassword,
  newApiKeyVerifier,
  newPassword,
  sameHex,
  sealApiKey,
} from './secrets.ts';

/**
 * A user as stored: key `dotmesh.io/users/users/<id>`, name index `dotmesh.io/users/nameidx/<name>`,
 * email index `dotmesh.io/users/emailidx/<email>` for users with an email. The store holds
 * verifiers only (auth/secrets.ts): the password's scrypt salt and hash (hex, the original's
 * parameters), the API key's HMAC and its salt (hex), and the API key sealed under a key
 * derived from the password (base64; "" when it cannot be recovered). Never the password,
 * never the API key.
 */
export interface UserRecord {
  readonly Id: string;
  readonly Name: string;
  readonly Email: string;
  readonly Salt: string;
  readonly Password: string;
  readonly ApiKeySalt: string;
  readonly ApiKeyHmac: string;
  readonly ApiKeySealed: string;
  readonly Metadata: Record<string, string>;
}

/** A user's identity and metadata: a UserRecord without its credentials. */
export type UserIdentity = Pick<UserRecord, 'Id' | 'Name' | 'Email' | 'Metadata'>;

export const USERS = `${PREFIX}users/users/`;
export const NAMEIDX = `${PREFIX}users/nameidx/`;
export const EMAILIDX = `${PREFIX}users/emailidx/`;

export function apiKeyVerifierOf(user: UserRecord): ApiKeyVerifier {
  return { salt: user.ApiKeySalt, hmac: user.ApiKeyHmac };
}

/** Whether `secret` is the user's API key (an HMAC: microseconds). */
export function isApiKeyOf(user: UserRecord, secret: string): boolean {
  return apiKeyMatches(secret, user.Id, apiKeyVerifierOf(user));
}

/** The unlock key of `password` when it is the user's password, else undefined (one scrypt run). */
export async function unlockWithPassword(user: UserRecord, password: string): Promise<Buffer | undefined> {
  if (user.Salt === '' || user.Password === '') return undefined;
  const derived = await derivePassword(password, user.Salt, user.Id);
  return sameHex(derived.hash, user.Password) ? derived.unlockKey : undefined;
}

/** The user with a new password and API key: their verifiers, and the key sealed under the password. */
export async function withCredentials(user: UserIdentity, password: string, apiKey: string): Promise<UserRecord> {
  const pw = await newPassword(password, user.Id);
  const verifier = newApiKeyVerifier(apiKey, user.Id);
  return {
    ...identityOf(user),
    Salt: pw.salt,
    Password: pw.hash,
    ApiKeySalt: verifier.salt,
    ApiKeyHmac: verifier.hmac,
    ApiKeySealed: sealApiKey(apiKey, pw.unlockKey, user.Id, verifier),
  };
}

/** The verifier fields of a key whose password is not known here: it authenticates, but cannot be shown. */
export function unsealedApiKey(userId: string, apiKey: string): Pick<UserRecord, 'ApiKeySalt' | 'ApiKeyHmac' | 'ApiKeySealed'> {
  const verifier = newApiKeyVerifier(apiKey, userId);
  return { ApiKeySalt: verifier.salt, ApiKeyHmac: verifier.hmac, ApiKeySealed: '' };
}

function identityOf(u: UserIdentity): UserIdentity {
  return { Id: u.Id, Name: u.Name, Email: u.Email, Metadata: { ...u.Metadata } };
}

/**
 * Parses a stored user record; undefined when it is not one. A record written by an earlier
 * version holds its API key in clear (`ApiKey`): it is returned with a verifier of that key
 * instead (and `clearKey: true`, so the caller can write it back), never with the key itself.
 */
export function decodeUser(value: string): { user: UserRecord; clearKey: boolean } | undefined {
  const raw = parseValue<Record<string, unknown>>(value);
  if (!raw || typeof raw !== 'object' || typeof raw.Id !== 'string' || typeof raw.Name !== 'string') return undefined;
  const text = (name: string): string => (typeof raw[name] === 'string' ? (raw[name] as string) : '');
  const base: UserRecord = {
    Id: raw.Id,
    Name: raw.Name,
    Email: text('Email'),
    Salt: text('Salt'),
    Password: text('Password'),
    ApiKeySalt: text('ApiKeySalt'),
    ApiKeyHmac: text('ApiKeyHmac'),
    ApiKeySealed: text('ApiKeySealed'),
    Metadata: stringMap(raw.Metadata),
  };
  if (!Object.hasOwn(raw, 'ApiKey')) return { user: base, clearKey: false };
  const clear = text('ApiKey');
  const user = clear !== '' && base.ApiKeyHmac === '' ? { ...base, ...unsealedApiKey(base.Id, clear) } : base;
  return { user, clearKey: true };
}

function stringMap(value: unknown): Record<string, string> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** The stored form of a user (the fields of UserRecord, in that order, and nothing else). */
export function encodeUser(u: UserRecord): string {
  const record: UserRecord = {
    Id: u.Id,
    Name: u.Name,
    Email: u.Email,
    Salt: u.Salt,
    Password: u.Password,
    ApiKeySalt: u.ApiKeySalt,
    ApiKeyHmac: u.ApiKeyHmac,
    ApiKeySealed: u.ApiKeySealed,
    Metadata: { ...u.Metadata },
  };
  return JSON.stringify(record);
}

/** The store writes of one user: its record and index entries. */
export function userOps(user: UserRecord): TxnOp[] {
  const ops: TxnOp[] = [
    { type: 'put', key: `${USERS}${user.Id}`, value: encodeUser(user) },
    { type: 'put', key: `${NAMEIDX}${user.Name}`, value: JSON.stringify({ prefix: NAMEIDX, name: user.Name, id: user.Id }) },
  ];
  if (user.Email !== '') {
    ops.push({ type: 'put', key: `${EMAILIDX}${user.Email}`, value: JSON.stringify({ email: user.Email, id: user.Id }) });
  }
  return ops;
}

export function safeUser(u: UserIdentity): SafeUser {
  return {
    Id: u.Id,
    Name: u.Name,
    Email: u.Email,
    EmailHash: createHash('md5').update(u.Email).digest('hex'),
    Metadata: { ...u.Metadata },
  };
}
