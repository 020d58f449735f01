import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { DotmeshError } from '@dotmesh/core';
import type { Store } from '@dotmesh/store';
import { KEYS } from './store-keys.ts';

/**
 * Join tokens: `<id>.<secret>` (6 and 32 characters of [a-z0-9]), what a host shows to join
 * the cluster (cluster/join-issuer.ts). The store holds, under `join/tokens/<id>`, only a
 * verifier of the secret (its SHA-256: the secret is random, 165 bits), when it expires and
 * how many joins it has left (null: any number until it expires).
 *
 * Contracts: a token is used by one compare-and-swap of its record (two joins racing for the
 * last use: one wins); a used-up record stays (refused as used up) until it expires; an
 * expired one is refused and deleted; errors name the token's id, never its secret.
 */
export interface JoinTokenRecord {
  readonly Id: string;
  /** SHA-256 of the secret, hex. */
  readonly Verifier: string;
  readonly Created: string;
  readonly Expires: string;
  /** Joins left; null: unlimited until it expires. */
  readonly UsesLeft: number | null;
  readonly Description: string;
}

export interface JoinTokenInfo {
  readonly Id: string;
  readonly Created: string;
  readonly Expires: string;
  readonly UsesLeft: number | null;
  readonly Description: string;
}

export const DEFAULT_JOIN_TOKEN_TTL_SECONDS = 24 * 3600;
const TOKEN_RE = /^([a-z0-9]{6})\.([a-z0-9]{32})$/;
const ID_RE = /^[a-z0-9]{6}$/;
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomText(length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

function verifierOf(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The token's id when `token` has the shape of one (never its secret). */
export function joinTokenId(token: string): string | undefined {
  return TOKEN_RE.exec(token)?.[1];
}

export class JoinTokens {
  readonly #store: Store;
  readonly #now: () => Date;

  constructor(store: Store, now: () => Date = () => new Date()) {
    this.#store = store;
    this.#now = now;
  }

  /** A new token; `uses` 0 = any number of joins until it expires. */
  async create(o: { ttlSeconds: number; uses: number; description: string }): Promise<{ token: string; info: JoinTokenInfo }> {
    if (!Number.isInteger(o.ttlSeconds) || o.ttlSeconds < 1 || o.ttlSeconds > 365 * 86_400) {
      throw new DotmeshError('INVALID_ARGUMENT', `a join token's TTL must be 1 s to 365 days, not ${o.ttlSeconds} s`);
    }
    if (!Number.isInteger(o.uses) || o.uses < 0 || o.uses > 1_000_000) {
      throw new DotmeshError('INVALID_ARGUMENT', `a join token's uses must be 0 (unlimited) to 1000000, not ${o.uses}`);
    }
    if (o.description.length > 200)
      throw new DotmeshError('INVALID_ARGUMENT', 'a join token description has at most 200 characters');
    const now = this.#now();
    for (;;) {
      const id = randomText(6);
      const secret = randomText(32);
      const record: JoinTokenRecord = {
        Id: id,
        Verifier: verifierOf(secret),
        Created: now.toISOString(),
        Expires: new Date(now.getTime() + o.ttlSeconds * 1000).toISOString(),
        UsesLeft: o.uses === 0 ? null : o.uses,
        Description: o.description,
      };
      const key = KEYS.joinToken(id);
      const r = await this.#store.txn({
        compare: [{ key, target: 'version', op: '==', value: 0 }],
        success: [{ type: 'put', key, value: JSON.stringify(record) }],
      });
      if (r.succeeded) return { token: `${id}.${secret}`, info: info(record) };
    }
  }

  /** The tokens that can still be used (expired ones are deleted on the way; used-up ones stay until they expire). */
  async list(): Promise<JoinTokenInfo[]> {
    const { kvs } = await this.#store.range(KEYS.joinTokensPrefix);
    const out: JoinTokenInfo[] = [];
    for (const kv of kvs) {
      const record = parse(kv.value);
      if (!record || this.#expired(record)) await this.#store.delete(kv.key);
      else if (record.UsesLeft !== 0) out.push(info(record));
    }
    return out;
  }

  /** Deletes a token by id; false when there was none. */
  async delete(id: string): Promise<boolean> {
    if (!ID_RE.test(id)) throw new DotmeshError('INVALID_ARGUMENT', `${JSON.stringify(id.slice(0, 40))} is not a join token id`);
    return (await this.#store.delete(KEYS.joinToken(id))).deleted > 0;
  }

  /** Checks the token without using it (UNAUTHENTICATED when it would be refused). */
  async check(token: string): Promise<void> {
    await this.#valid(token);
  }

  /** Uses the token once; UNAUTHENTICATED (naming its id) when unknown, wrong, expired or used up. */
  async use(token: string): Promise<void> {
    for (;;) {
      const { key, record, modRevision } = await this.#valid(token);
      const left = record.UsesLeft;
      const r = await this.#store.txn({
        compare: [{ key, target: 'modRevision', op: '==', value: modRevision }],
        success: left === null ? [] : [{ type: 'put', key, value: JSON.stringify({ ...record, UsesLeft: left - 1 }) }],
      });
      if (r.succeeded) return;
    }
  }

  async #valid(token: string): Promise<{ key: string; record: JoinTokenRecord; modRevision: number }> {
    const m = TOKEN_RE.exec(token);
    if (!m) {
      throw new DotmeshError('UNAUTHENTICATED', 'the join token is malformed', {
        hint: "a join token is <6 characters>.<32 characters> of [a-z0-9]: 'dm cluster token create' on a node of the cluster makes one",
      });
    }
    const [, id = '', secret = ''] = m;
    const key = KEYS.joinToken(id);
    const kv = await this.#store.get(key);
    const record = kv ? parse(kv.value) : undefined;
    const refused = (why: string) =>
      new DotmeshError('UNAUTHENTICATED', `join token ${id} ${why}`, {
        hint: "make a new one with 'dm cluster token create' on a node of the cluster",
        data: { tokenId: id },
      });
    if (!kv || !record) throw refused('is unknown (never made, deleted, expired or used up)');
    const given = Buffer.from(verifierOf(secret), 'hex');
    const stored = Buffer.from(record.Verifier, 'hex');
    if (given.length !== stored.length || !timingSafeEqual(given, stored))
      throw refused('is unknown (never made, deleted, expired or used up)');
    if (this.#expired(record)) {
      await this.#store.delete(key);
      throw refused(`expired at ${record.Expires}`);
    }
    if (record.UsesLeft !== null && record.UsesLeft < 1) throw refused('is used up');
    return { key, record, modRevision: kv.modRevision };
  }

  #expired(record: JoinTokenRecord): boolean {
    return Date.parse(record.Expires) <= this.#now().getTime();
  }
}

function info(r: JoinTokenRecord): JoinTokenInfo {
  return { Id: r.Id, Created: r.Created, Expires: r.Expires, UsesLeft: r.UsesLeft, Description: r.Description };
}

function parse(value: string): JoinTokenRecord | undefined {
  try {
    const r = JSON.parse(value) as JoinTokenRecord;
    return typeof r.Id === 'string' && typeof r.Verifier === 'string' && typeof r.Expires === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}
