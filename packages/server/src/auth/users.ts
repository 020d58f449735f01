import { randomUUID } from 'node:crypto';
import { ADMIN_USER_ID, ADMIN_USER_NAME, abbreviate, DotmeshError, validateName } from '@dotmesh/core';
import type { Store } from '@dotmesh/store';
import type { CallerProof } from './proof.ts';
import { API_KEY_BYTES, newApiKeyVerifier, newPassword, openApiKey, randomToken, sealApiKey } from './secrets.ts';
import {
  apiKeyVerifierOf,
  decodeUser,
  EMAILIDX,
  encodeUser,
  isApiKeyOf,
  NAMEIDX,
  USERS,
  type UserRecord,
  userOps,
  withCredentials,
} from './user-record.ts';

export { safeUser, type UserRecord } from './user-record.ts';

/** The initial-admin file's contents (`@dotmesh/rpc` initialAdminSchema). */
export interface InitialAdminCredentials {
  readonly password: string;
  readonly apiKey: string;
  readonly replaceExisting?: boolean;
}

export const MIN_PASSWORD_LENGTH = 7;
const MAX_PASSWORD_LENGTH = 1024;
const MAX_EMAIL_LENGTH = 254;

/** A user name is a namespace: the name rules apply, and it may not contain `/`. */
export function validateUserName(name: string): string {
  if (name.includes('/')) {
    throw new DotmeshError('INVALID_NAME', `Username may not contain '/': ${abbreviate(name)}`, {
      hint: 'a user name is a namespace: letters, digits, _ and -',
    });
  }
  return validateName('namespace', name);
}

function validateEmail(email: string): string {
  if (email.length === 0 || email.length > MAX_EMAIL_LENGTH || !/^[^\s@]+@[^\s@]+$/.test(email)) {
    throw new DotmeshError('INVALID_ARGUMENT', `Invalid email address: ${abbreviate(email)}`, {
      hint: 'give an address like alice@example.com',
    });
  }
  return email;
}

export function validatePassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new DotmeshError('INVALID_ARGUMENT', `Password must be at least ${MIN_PASSWORD_LENGTH} characters long`);
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new DotmeshError('INVALID_ARGUMENT', `Password must be at most ${MAX_PASSWORD_LENGTH} characters long`);
  }
}

function usernameExists(): DotmeshError {
  return new DotmeshError('CONFLICT', 'Username already exists - contact help@dotmesh.io');
}

function emailExists(): DotmeshError {
  return new DotmeshError('CONFLICT', 'Email already exists - contact help@dotmesh.io');
}

/** How often an update of a user is tried again when another write to it came first. */
const UPDATE_ATTEMPTS = 5;

/**
 * The users in the store. Every credential change (a new password, a new API key) is one
 * compare-and-swap of the user's record, so it is seen at once by every node: the
 * Authenticator reads the record on each request.
 */
export class UserService {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  async byId(id: string): Promise<UserRecord | undefined> {
    const kv = await this.#store.get(`${USERS}${id}`);
    return kv ? decodeUser(kv.value)?.user : undefined;
  }

  async byName(name: string): Promise<UserRecord | undefined> {
    const kv = await this.#store.get(`${NAMEIDX}${name}`);
    if (!kv) return undefined;
    return this.byId((JSON.parse(kv.value) as { id: string }).id);
  }

  async byEmail(email: string): Promise<UserRecord | undefined> {
    if (email === '') return undefined;
    const kv = await this.#store.get(`${EMAILIDX}${email}`);
    if (!kv) return undefined;
    return this.byId((JSON.parse(kv.value) as { id: string }).id);
  }

  /** Writes a user and its name (and email) index atomically. */
  async save(user: UserRecord): Promise<void> {
    await this.#store.txn({ compare: [], success: userOps(user) });
  }

  /**
   * Rewrites the user records an earlier version wrote with the API key in clear: each gets a
   * verifier of its key instead (the key keeps working; it cannot be shown by GetApiKey, the
   * password being unknown here). Idempotent, and safe on several nodes at once (each record
   * is compared-and-swapped). Returns how many records it rewrote.
   */
  async removeClearApiKeys(): Promise<number> {
    let rewritten = 0;
    for (const kv of (await this.#store.range(USERS)).kvs) {
      const decoded = decodeUser(kv.value);
      if (!decoded?.clearKey) continue;
      const result = await this.#store.txn({
        compare: [{ key: kv.key, target: 'modRevision', op: '==', value: kv.modRevision }],
        success: [{ type: 'put', key: kv.key, value: encodeUser(decoded.user) }],
      });
      if (result.succeeded) rewritten++;
    }
    return rewritten;
  }

  /**
   * Creates a user (RegisterNewUser): validated name, email and password, a new API key, the
   * verifiers of both and the key sealed under the password. The name and email indexes are
   * claimed in one transaction, so two concurrent registrations of one name (or email) cannot
   * both succeed.
   */
  async register(req: { name: string; email: string; password: string }): Promise<UserRecord> {
    const name = validateUserName(req.name);
    const email = validateEmail(req.email);
    validatePassword(req.password);
    if (name === ADMIN_USER_NAME || (await this.byName(name))) throw usernameExists();
    if (await this.byEmail(email)) throw emailExists();
    const user = await withCredentials(
      { Id: randomUUID(), Name: name, Email: email, Metadata: {} },
      req.password,
      randomToken(API_KEY_BYTES),
    );
    const result = await this.#store.txn({
      compare: [
        { key: `${NAMEIDX}${name}`, target: 'version', op: '==', value: 0 },
        { key: `${EMAILIDX}${email}`, target: 'version', op: '==', value: 0 },
      ],
      success: userOps(user),
    });
    if (!result.succeeded) throw (await this.byName(name)) ? usernameExists() : emailExists();
    return user;
  }

  /**
   * Sets a new password (UpdatePassword, password auth): a new salt and hash, and the API key
   * (which stays) sealed again under the new password. A key that could not be shown before
   * (kept as a verifier only) still cannot.
   */
  async updatePassword(userId: string, proof: CallerProof | undefined, password: string): Promise<UserRecord> {
    validatePassword(password);
    return this.#update(userId, async (user) => {
      const unlockKey = requireUnlockKey(user, proof);
      const verifier = apiKeyVerifierOf(user);
      const apiKey = user.ApiKeySealed === '' ? undefined : openApiKey(user.ApiKeySealed, unlockKey, user.Id, verifier);
      const pw = await newPassword(password, user.Id);
      return {
        ...user,
        Salt: pw.salt,
        Password: pw.hash,
        ApiKeySealed: apiKey === undefined ? '' : sealApiKey(apiKey, pw.unlockKey, user.Id, verifier),
      };
    });
  }

  /** A new API key (ResetApiKey, password auth), sealed under the password; the old key fails from now on. */
  async resetApiKey(userId: string, proof: CallerProof | undefined): Promise<string> {
    let apiKey = '';
    await this.#update(userId, async (user) => {
      const unlockKey = requireUnlockKey(user, proof);
      apiKey = randomToken(API_KEY_BYTES);
      const verifier = newApiKeyVerifier(apiKey, user.Id);
      return {
        ...user,
        ApiKeySalt: verifier.salt,
        ApiKeyHmac: verifier.hmac,
        ApiKeySealed: sealApiKey(apiKey, unlockKey, user.Id, verifier),
      };
    });
    return apiKey;
  }

  /**
   * The user's API key (GetApiKey): the one the caller authenticated with, or, for a caller
   * who sent the password, the sealed copy opened with it. UNSUPPORTED for a key kept as a
   * verifier only (written by an earlier version or restored from the original's backup).
   */
  apiKeyOf(user: UserRecord, proof: CallerProof | undefined): string {
    const sent = proof?.apiKey;
    if (sent !== undefined && isApiKeyOf(user, sent)) return sent;
    const unlockKey = proof?.unlockKeyFor(user);
    if (unlockKey === undefined) {
      throw new DotmeshError('UNAUTHENTICATED', `The credentials of ${user.Name} changed while this call ran`, {
        hint: 'call GetApiKey again with the current API key or password',
      });
    }
    const apiKey =
      user.ApiKeySealed === '' ? undefined : openApiKey(user.ApiKeySealed, unlockKey, user.Id, apiKeyVerifierOf(user));
    if (apiKey === undefined) {
      throw new DotmeshError(
        'UNSUPPORTED',
        `The API key of ${user.Name} cannot be shown: the server keeps only a verifier of it (it was set by an earlier version, or restored from a backup that held it in clear)`,
        {
          hint: 'the key keeps working where it is used; ResetApiKey (with the password) issues a new key that GetApiKey can show',
          data: { user: user.Name, recoverable: false },
        },
      );
    }
    return apiKey;
  }

  /**
   * The admin user at start. Initial credentials (from `dm cluster init`, a 0600 file only root
   * can write) only seed a store that has no admin yet: a store with an admin keeps its
   * password and API key, so a restart, a second `dm cluster init` or an upgrade never
   * invalidates a key in use elsewhere. Only `replaceExisting` (init's
   * `--new-admin-credentials`) replaces them. Returns what it did: `created`, `replaced`,
   * `kept` (no initial credentials, or the same key) or `ignored` (other credentials, not used).
   * The store gets their verifiers, as for every user.
   */
  async ensureAdmin(initial: InitialAdminCredentials | undefined): Promise<'created' | 'replaced' | 'kept' | 'ignored'> {
    const existing = await this.byId(ADMIN_USER_ID);
    if (existing) {
      if (!initial || (!initial.replaceExisting && isApiKeyOf(existing, initial.apiKey))) return 'kept';
      if (!initial.replaceExisting) return 'ignored';
      await this.save(await withCredentials(existing, initial.password, initial.apiKey));
      return 'replaced';
    }
    if (!initial) {
      throw new DotmeshError('UNAVAILABLE', 'The store has no admin user and no initial admin credentials were given', {
        hint: "run 'dm cluster init' to create them",
      });
    }
    const admin = { Id: ADMIN_USER_ID, Name: ADMIN_USER_NAME, Email: '', Metadata: {} };
    await this.save(await withCredentials(admin, initial.password, initial.apiKey));
    return 'created';
  }

  /** Reads the user, applies `change` and writes the result if nothing wrote the user meanwhile (else again). */
  async #update(userId: string, change: (user: UserRecord) => Promise<UserRecord>): Promise<UserRecord> {
    for (let attempt = 1; ; attempt++) {
      const kv = await this.#store.get(`${USERS}${userId}`);
      const user = kv ? decodeUser(kv.value)?.user : undefined;
      if (!kv || !user) throw new DotmeshError('UNAUTHENTICATED', `No such user ${userId}`);
      const updated = await change(user);
      const result = await this.#store.txn({
        compare: [{ key: kv.key, target: 'modRevision', op: '==', value: kv.modRevision }],
        success: userOps(updated),
      });
      if (result.succeeded) return updated;
      if (attempt >= UPDATE_ATTEMPTS) {
        throw new DotmeshError('CONFLICT', `The user ${user.Name} kept changing while this call ran`, { hint: 'try again' });
      }
    }
  }
}

/** The unlock key of the password the caller authenticated with, if it is still the user's. */
function requireUnlockKey(user: UserRecord, proof: CallerProof | undefined): Buffer {
  const unlockKey = proof?.unlockKeyFor(user);
  if (unlockKey === undefined) {
    throw new DotmeshError('UNAUTHENTICATED', `The password of ${user.Name} changed while this call ran`, {
      hint: 'authenticate with the current password and try again',
    });
  }
  return unlockKey;
}
