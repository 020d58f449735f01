import { createHash, timingSafeEqual } from 'node:crypto';
import type { Caller } from '../dots/caller.ts';
import { type UserRecord, type UserService, verifyPassword } from './users.ts';

/**
 * Checks HTTP Basic credentials: the secret is the user's API key, or their password.
 * Successful password checks are cached (as a salted digest, for a few minutes) because
 * scrypt costs ~100 ms; failures are rate-limited per user name and per client address.
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
  readonly #users: UserService;
  readonly #now: () => number;
  readonly #cacheMs: number;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #passwordCache = new Map<string, { digest: Buffer; until: number }>();
  readonly #failures = new Map<string, number[]>();

  constructor(users: UserService, options: AuthOptions = {}) {
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
      if (equal(secret, user.ApiKey)) return { id: user.Id, name: user.Name, authMethod: 'apikey' };
      if (await this.#passwordMatches(user, secret)) return { id: user.Id, name: user.Name, authMethod: 'password' };
    }
    this.#fail(`u:${userName}`);
    this.#fail(`a:${clientAddress}`);
    return null;
  }

  /** Forgets cached password checks of a user (after a password or key change). */
  forget(userId: string): void {
    this.#passwordCache.delete(userId);
  }

  async #passwordMatches(user: UserRecord, secret: string): Promise<boolean> {
    const digest = createHash('sha256').update(user.Salt).update('\0').update(user.Password).update('\0').update(secret).digest();
    const cached = this.#passwordCache.get(user.Id);
    if (cached && cached.until > this.#now() && timingSafeEqual(cached.digest, digest)) return true;
    if (!(await verifyPassword(user, secret))) return false;
    this.#passwordCache.set(user.Id, { digest, until: this.#now() + this.#cacheMs });
    return true;
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

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
