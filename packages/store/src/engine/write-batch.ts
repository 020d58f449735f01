import type { KeyValue, TxnOp, WatchEvent } from '../store.ts';
import { leaseNotFound } from '../store-errors.ts';
import type { Backend, Commit, LeaseRecord } from './backend.ts';
import { compareKeys } from './keys.ts';

/**
 * Computes one write (a put, a delete, a txn branch, a lease change) against the backend's
 * state without touching it: reads go through an overlay of this batch's own changes, so
 * ops see the ones before them. `toCommit()` yields what the backend applies atomically.
 * Throws before anything is applied (bad lease), so a failed write leaves no trace.
 */
export class WriteBatch {
  readonly #backend: Backend;
  readonly #now: number;
  readonly #revision: number;
  /** Changed keys: the new state, or null once deleted. */
  readonly #overlay = new Map<string, KeyValue | null>();
  readonly #events: WatchEvent[] = [];
  readonly #leaseUpserts = new Map<string, LeaseRecord>();
  readonly #leaseDeletes = new Set<string>();
  readonly gets: (KeyValue | undefined)[] = [];
  deleted = 0;

  constructor(backend: Backend, now: number) {
    this.#backend = backend;
    this.#now = now;
    this.#revision = backend.revision() + 1;
  }

  get changed(): boolean {
    return this.#events.length > 0 || this.#leaseUpserts.size > 0 || this.#leaseDeletes.size > 0;
  }

  /** Revision the store is at once this batch is applied. */
  get resultRevision(): number {
    return this.#events.length > 0 ? this.#revision : this.#revision - 1;
  }

  get(key: string): KeyValue | undefined {
    const own = this.#overlay.get(key);
    if (own !== undefined) return own ?? undefined;
    return this.#backend.get(key);
  }

  apply(op: TxnOp): void {
    switch (op.type) {
      case 'put':
        this.put(op.key, op.value, op.lease);
        return;
      case 'delete':
        this.delete(op.key);
        return;
      case 'deletePrefix':
        this.deletePrefix(op.prefix);
        return;
      case 'get':
        this.gets.push(this.get(op.key));
        return;
    }
  }

  /** Precondition: the key is not yet written by this batch (checkTxn's rule). */
  put(key: string, value: string, lease: string | undefined): void {
    if (lease !== undefined) this.#requireLiveLease(lease);
    const old = this.get(key);
    const kv: KeyValue = {
      key,
      value,
      createRevision: old?.createRevision ?? this.#revision,
      modRevision: this.#revision,
      version: (old?.version ?? 0) + 1,
      ...(lease === undefined ? {} : { lease }),
    };
    this.#overlay.set(key, kv);
    this.#events.push(Object.freeze({ type: 'put', key, value, revision: this.#revision }));
  }

  /** Deleting a missing key does nothing. */
  delete(key: string): void {
    if (this.get(key) === undefined) return;
    this.#overlay.set(key, null);
    this.#events.push(Object.freeze({ type: 'delete', key, revision: this.#revision }));
    this.deleted++;
  }

  deletePrefix(prefix: string): void {
    const keys = new Set(this.#backend.range(prefix).map((kv) => kv.key));
    for (const [key, kv] of this.#overlay) {
      if (kv !== null && key.startsWith(prefix)) keys.add(key);
    }
    for (const key of [...keys].sort(compareKeys)) this.delete(key);
  }

  upsertLease(lease: LeaseRecord): void {
    this.#leaseUpserts.set(lease.id, lease);
  }

  /** Removes the lease and deletes every key attached to it. */
  dropLease(leaseId: string): void {
    for (const key of this.#backend.keysWithLease(leaseId)) {
      if (this.#overlay.get(key) === undefined) this.delete(key);
    }
    this.#leaseUpserts.delete(leaseId);
    this.#leaseDeletes.add(leaseId);
  }

  toCommit(): Commit {
    const puts: KeyValue[] = [];
    const deletes: string[] = [];
    for (const [key, kv] of this.#overlay) {
      if (kv === null) deletes.push(key);
      else puts.push(kv);
    }
    return {
      revision: this.resultRevision,
      puts,
      deletes,
      events: this.#events,
      leaseUpserts: [...this.#leaseUpserts.values()],
      leaseDeletes: [...this.#leaseDeletes],
    };
  }

  #requireLiveLease(leaseId: string): void {
    const lease = this.#backend.lease(leaseId);
    if (lease === undefined || lease.expiresAt <= this.#now || this.#leaseDeletes.has(leaseId)) {
      throw leaseNotFound(leaseId);
    }
  }
}
