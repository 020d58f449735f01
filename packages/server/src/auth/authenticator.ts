import { createHash, timingSafeEqual } from 'node:crypto';
import type { Caller } from '../dots/caller.ts';
import { CallerProof } from './proof.ts';
import { isApiKeyOf, type UserRecord, unlockWithPassword } from './user-record.ts';
import type { UserService } from './users.ts';

/**
 * Checks HTTP Basic credentials: the secret is the user's API key, or their password. The
 * user's record is read from the store on every request, so a new key or password counts at
 * once on every node. An API key is checked against its HMAC verifier (microseconds); a
 * password costs one scrypt run (~100 ms), so successful password checks are cached in memory
 * for a few minutes, as a digest of the secret with the record's salt and hash (a changed
 * password never matches a cached check) beside the password's unlock key. Failures are
 * rate-limited per user name and per client address. The caller carries the proof
 * (auth/proof.ts) for GetApiKey, ResetApiKey and UpdatePassword.
 * `users` is the server's KnownUsers (known-users.ts): while the store cannot be read, the
 * last record this node read of a user.
 */
export interface AuthOptions {
  readonly now?: () => number;
  readonly cacheMs?: number;
  readonly maxFailures?: number;
  readonly failureWindowMs?: number;
}

/** At most this many user names and client addresses have failures remembered. */
const MAX_TRACKED_KEYS = 10_000;

export class Authenticator {
  readonly #users: Pick<UserService, 'byName'>;
  readonly #now: () => number;
  readonly #cacheMs: number;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #passwordCache = new Map<string, { digest: Buffer; until: number; unlockKey: Buffer }>();
  readonly #failures = new Map<string, number[]>();

  constructor(users: Pick<UserService, 'byName'>, options: AuthOptions = {}) {
    this.#users = users;
    this.#now = options.now ?? Date.now;
    this.#cacheMs = options.cacheMs ?? 5 * 60_000;
    this.#maxFailures = options.maxFailures ?? 20;
    this.#windowMs = options.failureWindowMs ?? 60_000;
  }

  /** Parses an Authorization header; null when absent or malformed. */
  static parseBasic(header: string | undefined): { user: string; secret: string } | null {
    if (!header?.startsWith('Basic ')) return null;
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return null;
    return { user: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
  }

  async authenticate(userName: string, secret: string, clientAddress: string): Promise<Caller | null> {
    if (this.#limited(`u:${userName}`) || this.#limited(`a:${clientAddress}`)) return null;
    const user = userName.length <= 256 ? await this.#users.byName(userName) : undefined;
    if (user && secret.length > 0 && secret.length <= 1024) {
      if (isApiKeyOf(user, secret)) {
        return { id: user.Id, name: user.Name, authMethod: 'apikey', proof: CallerProof.apiKey(secret) };
      }
      const unlockKey = await this.#passwordUnlockKey(user, secret);
      if (unlockKey) {
        return { id: user.Id, name: user.Name, authMethod: 'password', proof: CallerProof.password(unlockKey, user.Salt) };
      }
    }
    this.#fail(`u:${userName}`);
    this.#fail(`a:${clientAddress}`);
    return null;
  }

  /** Forgets cached password checks of a user (after a password or key change). */
  forget(userId: string): void {
    this.#passwordCache.delete(userId);
  }

  async #passwordUnlockKey(user: UserRecord, secret: string): Promise<Buffer | undefined> {
    const digest = createHash('sha256').update(user.Salt).update('\0').update(user.Password).update('\0').update(secret).digest();
    const cached = this.#passwordCache.get(user.Id);
    if (cached && cached.until > this.#now() && timingSafeEqual(cached.digest, digest)) return cached.unlockKey;
    const unlockKey = await unlockWithPassword(user, secret);
    if (unlockKey) this.#passwordCache.set(user.Id, { digest, until: this.#now() + this.#cacheMs, unlockKey });
    return unlockKey;
  }

  #limited(key: string): boolean {
    const list = this.#failures.get(key);
    if (!list) return false;
    const since = this.#now() - this.#windowMs;
    const recent = list.filter((t) => t > since);
    if (recent.length === 0) this.#failures.delete(key);
    else this.#failures.set(key, recent);
    return recent.length >= this.#maxFailures;
  }

  #fail(key: string): void {
    // Bounded memory whatever a client sends: forget the oldest keys first.
    if (!this.#failures.has(key) && this.#failures.size >= MAX_TRACKED_KEYS) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
    const list = this.#failures.get(key) ?? [];
    list.push(this.#now());
    if (list.length > this.#maxFailures * 2) list.splice(0, list.length - this.#maxFailures * 2);
    this.#failures.set(key, list);
  }
}
