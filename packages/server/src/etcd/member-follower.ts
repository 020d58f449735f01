import { sameEndpoints } from '@dotmesh/store/etcd';
import { type EtcdMembers, votingClientUrls } from '@dotmesh/store/etcd-members';
import type { Logger } from '../log.ts';

/** How often a running server reads the etcd member list. */
export const MEMBERS_REFRESH_MS = 30_000;

/** What follows the member list: the store (and the membership client itself). */
export interface EndpointsUser {
  readonly endpoints: readonly string[];
  setEndpoints(endpoints: readonly string[]): unknown;
}

/**
 * Keeps a running server's etcd clients on the cluster's current members: every
 * `intervalMs` (and when asked, after a membership change this node made or saw), it lists
 * the members and points the store and the membership client at the client URLs of the
 * voting ones; a changed list is persisted (`persist`, the server's config) so that the next
 * start finds the cluster even once the members it started with are gone. A failed round is
 * logged (once until a round succeeds) and changes nothing.
 */
export class EtcdMemberFollower {
  readonly #members: EtcdMembers;
  readonly #store: EndpointsUser;
  readonly #persist: (endpoints: readonly string[]) => Promise<void>;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  #persisted: readonly string[];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #failing = false;
  #stopped = false;

  constructor(o: {
    readonly members: EtcdMembers;
    readonly store: EndpointsUser;
    /** The endpoints the config holds now. */
    readonly persisted: readonly string[];
    readonly persist: (endpoints: readonly string[]) => Promise<void>;
    readonly logger: Logger;
    readonly intervalMs?: number;
  }) {
    this.#members = o.members;
    this.#store = o.store;
    this.#persist = o.persist;
    this.#persisted = [...o.persisted];
    this.#logger = o.logger;
    this.#intervalMs = o.intervalMs ?? MEMBERS_REFRESH_MS;
  }

  /**
   * A round now, then one every `intervalMs`: a node that runs no member opened the store on
   * the endpoint it joined through alone, and must know the other members before that one goes.
   */
  start(): void {
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), this.#intervalMs);
    this.#timer.unref();
  }

  /** One round now (a round running is followed by another); resolves when it is done. */
  refresh(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#round().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        void this.refresh();
      }
    });
    return this.#running;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async #round(): Promise<void> {
    try {
      const next = votingClientUrls(await this.#members.list());
      if (next.length === 0 || this.#stopped) return;
      const before = [...this.#store.endpoints];
      if (!sameEndpoints(next, this.#members.endpoints)) this.#members.setEndpoints(next);
      await this.#store.setEndpoints(next);
      if (!sameEndpoints(next, before)) {
        this.#logger.info({ from: before, to: next }, 'the etcd members changed: the store client uses the current ones');
      }
      if (!sameEndpoints(next, this.#persisted)) {
        await this.#persist(next);
        this.#persisted = next;
      }
      if (this.#failing) this.#logger.info({ endpoints: next }, 'the etcd member list can be read again');
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) this.#logger.warn({ err }, 'cannot follow the etcd member list: keeping the endpoints as they are');
      this.#failing = true;
    }
  }
}
