import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import type { Store } from '@dotmesh/store';
import type { Logger } from '../log.ts';

export interface NodeLeaseOptions {
  readonly ttlSeconds: number;
  /** Safety margin subtracted from the deadline (clock drift between us and etcd, GC pauses). */
  readonly marginMs: number;
  /** A monotonic clock in milliseconds (performance.now by default). */
  readonly monotonicMs?: () => number;
  readonly logger: Logger;
}

export const DEFAULT_NODE_LEASE = { ttlSeconds: 10, marginMs: 2_000 } as const;

/** Keep-alives at once: at TTL/4 apart, enough to span a request deadline of one TTL. */
const MAX_KEEPALIVES_IN_FLIGHT = 4;

/**
 * This node's lease in the cluster store. Its own keys (held commits, branch states, address)
 * are bound to it, and it fences every mutation: the node may act as a branch's master only
 * until its *deadline*, measured on the monotonic clock from the moment the last acknowledged
 * keep-alive was *sent*, plus the TTL, minus a margin. etcd cannot have expired the lease
 * before then, whatever the network did after the send. The deadline never comes from a
 * library's "lease lost" event, which may arrive late.
 *
 * Keep-alives run every TTL/4, each without waiting for the one before (up to
 * MAX_KEEPALIVES_IN_FLIGHT at once): one stuck on an etcd member that accepts connections but
 * does not answer (frozen, partitioned) until its request deadline must not hold back those the
 * other members answer. A failed one is retried at the next tick while time is left. Once the
 * lease is gone (expired, revoked), `onLost` is called once: the owner grants a new lease and
 * advertises its keys again.
 */
export class NodeLease {
  readonly #store: Store;
  readonly #options: NodeLeaseOptions;
  readonly #now: () => number;
  #id: string;
  #deadline: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #onLost: (() => void) | undefined;
  #inFlight = 0;
  /** The lease id found gone (onLost ran for it). */
  #lostId: string | undefined;

  private constructor(store: Store, id: string, sentAt: number, options: NodeLeaseOptions) {
    this.#store = store;
    this.#options = options;
    this.#now = options.monotonicMs ?? (() => performance.now());
    this.#id = id;
    this.#deadline = sentAt + options.ttlSeconds * 1000 - options.marginMs;
  }

  /** Grants a new lease and starts keeping it alive. */
  static async grant(store: Store, options: NodeLeaseOptions): Promise<NodeLease> {
    const now = options.monotonicMs ?? (() => performance.now());
    const sentAt = now();
    const id = await store.grantLease(options.ttlSeconds);
    const lease = new NodeLease(store, id, sentAt, options);
    lease.#schedule();
    return lease;
  }

  get id(): string {
    return this.#id;
  }

  /** Milliseconds left before the deadline (negative once passed). */
  remainingMs(): number {
    return this.#deadline - this.#now();
  }

  /**
   * Throws UNAVAILABLE when the deadline has passed: this node can no longer prove it holds
   * its lease, so it must not change anything it masters.
   */
  assertLive(what: string): void {
    if (this.remainingMs() > 0) return;
    throw new DotmeshError('UNAVAILABLE', `cannot ${what}: this node has lost contact with the cluster store`, {
      hint: 'check that etcd is reachable from this node; the server resumes by itself once it is',
      data: { leaseId: this.#id },
    });
  }

  /** Called once when the lease is found gone (not on close()). */
  onLost(handler: () => void): void {
    this.#onLost = handler;
  }

  /** Replaces a lost lease by a new one (the owner re-advertises its keys under it). */
  async renew(): Promise<void> {
    const sentAt = this.#now();
    this.#id = await this.#store.grantLease(this.#options.ttlSeconds);
    this.#deadline = sentAt + this.#options.ttlSeconds * 1000 - this.#options.marginMs;
    this.#schedule();
  }

  /** One keep-alive now (tests; the loop calls it). Resolves false when the lease is gone. */
  async keepAlive(): Promise<boolean> {
    const sentAt = this.#now();
    const id = this.#id;
    try {
      await this.#store.keepAlive(id);
      // An answer for a lease replaced meanwhile says nothing about the current one.
      if (id === this.#id) {
        this.#deadline = Math.max(this.#deadline, sentAt + this.#options.ttlSeconds * 1000 - this.#options.marginMs);
      }
      return true;
    } catch (e) {
      if (isDotmeshError(e) && e.code === 'LEASE_NOT_FOUND') return false; // expired or revoked
      this.#options.logger.warn({ err: e, lease: this.#id }, 'lease keep-alive failed; retrying');
      return true;
    }
  }

  /** Stops keeping the lease alive; it expires after its TTL (keys stay until then). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#tick(), (this.#options.ttlSeconds * 1000) / 4);
    this.#timer.unref();
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    this.#schedule();
    if (this.#inFlight >= MAX_KEEPALIVES_IN_FLIGHT) return;
    const id = this.#id;
    this.#inFlight++;
    let alive: boolean;
    try {
      alive = await this.keepAlive();
    } finally {
      this.#inFlight--;
    }
    if (alive || this.#closed || id !== this.#id || this.#lostId === id) return;
    this.#lostId = id;
    clearTimeout(this.#timer);
    this.#options.logger.warn({ lease: this.#id }, 'this node’s lease is gone');
    this.#deadline = Number.NEGATIVE_INFINITY;
    this.#onLost?.();
  }
}
