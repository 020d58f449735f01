import { createHash, randomBytes, randomUUID, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { ADMIN_USER_ID, ADMIN_USER_NAME, abbreviate, base32, DotmeshError, validateName } from '@dotmesh/core';
import type { SafeUser } from '@dotmesh/rpc';
import type { Store, TxnOp } from '@dotmesh/store';

const scrypt = promisify(scryptCb) as (pw: string, salt: Buffer, keylen: number, opts: object) => Promise<Buffer>;

/** scrypt parameters of the original (N=32768, r=8, p=1, 32-byte key and salt). */
const SCRYPT = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_LEN = 32;

/**
 * A user as stored (key `dotmesh.io/users/users/<id>`, name index `dotmesh.io/users/nameidx/<name>`,
 * email index `dotmesh.io/users/emailidx/<email>` for users with an email).
 * The API key is kept retrievable because `GetApiKey` returns it (as the original); the
 * password only as a salted scrypt hash. The store file is 0600 under a 0700 directory.
 */
export interface UserRecord {
  readonly Id: string;
  readonly Name: string;
  readonly Email: string;
  readonly Salt: string;
  readonly Password: string;
  readonly ApiKey: string;
  readonly Metadata: Record<string, string>;
}

const USERS = 'dotmesh.io/users/users/';
const NAMEIDX = 'dotmesh.io/users/nameidx/';
const EMAILIDX = 'dotmesh.io/users/emailidx/';

/** The original's token format: base32 (padded) of `bytes` random bytes. */
export function randomToken(bytes: number): string {
  return base32(randomBytes(bytes));
}

export async function hashPassword(password: string, salt: Buffer = randomBytes(32)): Promise<{ salt: string; hash: string }> {
  const key = await scrypt(password, salt, KEY_LEN, SCRYPT);
  return { salt: salt.toString('hex'), hash: key.toString('hex') };
}

export async function verifyPassword(user: UserRecord, password: string): Promise<boolean> {
  if (user.Salt === '' || user.Password === '') return false;
  const key = await scrypt(password, Buffer.from(user.Salt, 'hex'), KEY_LEN, SCRYPT);
  const expected = Buffer.from(user.Password, 'hex');
  return expected.length === key.length && timingSafeEqual(expected, key);
}

export function safeUser(u: UserRecord): SafeUser {
  return {
    Id: u.Id,
    Name: u.Name,
    Email: u.Email,
    EmailHash: createHash('md5').update(u.Email).digest('hex'),
    Metadata: { ...u.Metadata },
  };
}

/** The store writes of one user: its record and index entries. */
function userOps(user: UserRecord): TxnOp[] {
  const ops: TxnOp[] = [
    { type: 'put', key: `${USERS}${user.Id}`, value: JSON.stringify(user) },
    { type: 'put', key: `${NAMEIDX}${user.Name}`, value: JSON.stringify({ prefix: NAMEIDX, name: user.Name, id: user.Id }) },
  ];
  if (user.Email !== '') {
    ops.push({ type: 'put', key: `${EMAILIDX}${user.Email}`, value: JSON.stringify({ email: user.Email, id: user.Id }) });
  }
  return ops;
}

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

export class UserService {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  async byId(id: string): Promise<UserRecord | undefined> {
    const kv = await this.#store.get(`${USERS}${id}`);
    return kv ? (JSON.parse(kv.value) as UserRecord) : undefined;
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
   * Creates a user (RegisterNewUser): validated name, email and password, a new API key and a
   * scrypt password hash. The name and email indexes are claimed in one transaction, so two
   * concurrent registrations of one name (or email) cannot both succeed.
   */
  async register(req: { name: string; email: string; password: string }): Promise<UserRecord> {
    const name = validateUserName(req.name);
    const email = validateEmail(req.email);
    validatePassword(req.password);
    if (name === ADMIN_USER_NAME || (await this.byName(name))) throw usernameExists();
    if (await this.byEmail(email)) throw emailExists();
    const { salt, hash } = await hashPassword(req.password);
    const user: UserRecord = {
      Id: randomUUID(),
      Name: name,
      Email: email,
      Salt: salt,
      Password: hash,
      ApiKey: randomToken(32),
      Metadata: {},
    };
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

  /** Sets a new password (≥ 7 characters); the API key stays. */
  async updatePassword(user: UserRecord, password: string): Promise<UserRecord> {
    validatePassword(password);
    const { salt, hash } = await hashPassword(password);
    const updated = { ...user, Salt: salt, Password: hash };
    await this.save(updated);
    return updated;
  }

  /**
   * The admin user at start. Initial credentials (from `dm cluster init`, a 0600 file only root
   * can write) only seed a store that has no admin yet: a store with an admin keeps its
   * password and API key, so a restart, a second `dm cluster init` or an upgrade never
   * invalidates a key in use elsewhere. Only `replaceExisting` (init's
   * `--new-admin-credentials`) replaces them. Returns what it did: `created`, `replaced`,
   * `kept` (no initial credentials, or the same key) or `ignored` (other credentials, not used).
   */
  async ensureAdmin(initial: InitialAdminCredentials | undefined): Promise<'created' | 'replaced' | 'kept' | 'ignored'> {
    const existing = await this.byId(ADMIN_USER_ID);
    if (existing) {
      if (!initial || (existing.ApiKey === initial.apiKey && !initial.replaceExisting)) return 'kept';
      if (!initial.replaceExisting) return 'ignored';
      const { salt, hash } = await hashPassword(initial.password);
      await this.save({ ...existing, Salt: salt, Password: hash, ApiKey: initial.apiKey });
      return 'replaced';
    }
    if (!initial) {
      throw new DotmeshError('UNAVAILABLE', 'The store has no admin user and no initial admin credentials were given', {
        hint: "run 'dm cluster init' to create them",
      });
    }
    const { salt, hash } = await hashPassword(initial.password);
    await this.save({
      Id: ADMIN_USER_ID,
      Name: ADMIN_USER_NAME,
      Email: '',
      Salt: salt,
      Password: hash,
      ApiKey: initial.apiKey,
      Metadata: {},
    });
    return 'created';
  }

  async resetApiKey(user: UserRecord): Promise<UserRecord> {
    const updated = { ...user, ApiKey: randomToken(32) };
    await this.save(updated);
    return updated;
  }
}
