import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import type { Logger } from '../log.ts';
import type { UserRecord } from './user-record.ts';
import type { UserService } from './users.ts';

/** At most this many users are remembered. */
const MAX_REMEMBERED = 10_000;
/**
 * How long a lookup waits for the store before the last record read answers instead (the read
 * goes on and its answer is remembered): a store without quorum never answers, and a request
 * must not wait for its read timeout before the store is known to be unavailable.
 */
const DEFAULT_READ_GRACE_MS = 500;

/**
 * Users as the request path looks them up (credentials, the caller of a call another node
 * passed on): from the store, which every node reads, so a changed key or password counts at
 * once everywhere. While the store cannot be read (it lost quorum, or this node is cut off from
 * it), the last record this node read of that user answers instead, so reads keep working; no
 * credential change can be stored meanwhile, except by the majority side of a partition, whose
 * change counts here once the store answers again. A read the store has not answered within
 * `readGraceMs` counts as one it cannot answer (for a user with a record to fall back on), and
 * until that read ends, users with a record are not read from the store at all. A
 * user this node has not read since it started cannot be checked then (UNAVAILABLE).
 */
export class KnownUsers {
  readonly #users: Pick<UserService, 'byName' | 'byId'>;
  readonly #storeAvailable: () => boolean;
  readonly #logger: Logger;
  readonly #readGraceMs: number;
  /** A read that outlasted its grace time and has not ended yet. */
  #lateRead: Promise<void> | undefined;
  /** The last record read of each user, by id; names map to ids. */
  readonly #byId = new Map<string, UserRecord>();
  readonly #idOf = new Map<string, string>();

  constructor(
    users: Pick<UserService, 'byName' | 'byId'>,
    o: { storeAvailable: () => boolean; logger: Logger; readGraceMs?: number },
  ) {
    this.#users = users;
    this.#storeAvailable = o.storeAvailable;
    this.#logger = o.logger;
    this.#readGraceMs = o.readGraceMs ?? DEFAULT_READ_GRACE_MS;
  }

  byName(name: string): Promise<UserRecord | undefined> {
    return this.#lookup(
      `user ${name}`,
      () => this.#users.byName(name),
      () => this.#byId.get(this.#idOf.get(name) ?? ''),
      () => this.#forget(this.#idOf.get(name)),
    );
  }

  byId(id: string): Promise<UserRecord | undefined> {
    return this.#lookup(
      `user id ${id}`,
      () => this.#users.byId(id),
      () => this.#byId.get(id),
      () => this.#forget(id),
    );
  }

  async #lookup(
    what: string,
    read: () => Promise<UserRecord | undefined>,
    remembered: () => UserRecord | undefined,
    forget: () => void,
  ): Promise<UserRecord | undefined> {
    let cause: DotmeshError | undefined;
    if (this.#storeAvailable() && !(this.#lateRead !== undefined && remembered() !== undefined)) {
      try {
        const reading = read().then((user) => {
          if (user) this.#remember(user);
          else forget();
          return user;
        });
        return remembered() === undefined ? await reading : await this.#withinGrace(reading);
      } catch (e) {
        if (!isDotmeshError(e) || e.code !== 'UNAVAILABLE') throw e;
        cause = e;
      }
    }
    const user = remembered();
    if (user) {
      this.#logger.debug({ user: user.Name }, 'the store is unavailable: using the last record read of this user');
      return user;
    }
    throw new DotmeshError('UNAVAILABLE', `cannot check ${what}: the cluster store is unavailable`, {
      hint: 'try again once the cluster store answers (this node has not read this user since it started)',
      ...(cause ? { cause } : {}),
    });
  }

  /**
   * `reading`'s answer, or UNAVAILABLE once the grace time passed (the read goes on). Until a
   * late read ends, lookups of users with a record answer from it without asking the store.
   */
  #withinGrace<T>(reading: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const mark = reading.then(
          () => {},
          () => {},
        );
        this.#lateRead = mark;
        void mark.then(() => {
          if (this.#lateRead === mark) this.#lateRead = undefined;
        });
        reject(new DotmeshError('UNAVAILABLE', `the cluster store did not answer within ${this.#readGraceMs} ms`));
      }, this.#readGraceMs);
    });
    reading.catch(() => {}); // a late failure has no one waiting for it
    return Promise.race([reading, late]).finally(() => clearTimeout(timer));
  }

  #remember(user: UserRecord): void {
    this.#forget(user.Id);
    if (this.#byId.size >= MAX_REMEMBERED) this.#forget(this.#byId.keys().next().value);
    this.#byId.set(user.Id, user);
    this.#idOf.set(user.Name, user.Id);
  }

  #forget(id: string | undefined): void {
    if (id === undefined) return;
    const user = this.#byId.get(id);
    this.#byId.delete(id);
    if (user && this.#idOf.get(user.Name) === id) this.#idOf.delete(user.Name);
  }
}
