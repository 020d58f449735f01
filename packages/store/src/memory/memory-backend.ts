import type { Backend, Commit, LeaseRecord } from '../engine/backend.ts';
import { compareKeys } from '../engine/keys.ts';
import type { KeyValue, WatchEvent } from '../store.ts';

/**
 * Backend in plain maps: nothing survives the process (a store reopened on the same backend object
 * sees everything, which models a restart). `apply` cannot fail halfway (no I/O),
 * so it is atomic. Ranges sort on each call: meant for tests, not for large data sets.
 */
export class MemoryBackend implements Backend {
  readonly #kvs = new Map<string, KeyValue>();
  readonly #leases = new Map<string, LeaseRecord>();
  readonly #historyRevisions: number;
  #events: WatchEvent[] = [];
  #revision = 0;
  #compacted = 0;

  constructor(options: { historyRevisions: number }) {
    this.#historyRevisions = options.historyRevisions;
  }

  revision(): number {
    return this.#revision;
  }

  compactedRevision(): number {
    return this.#compacted;
  }

  get(key: string): KeyValue | undefined {
    return this.#kvs.get(key);
  }

  range(prefix: string): KeyValue[] {
    const kvs = [...this.#kvs.values()].filter((kv) => kv.key.startsWith(prefix));
    return kvs.sort((a, b) => compareKeys(a.key, b.key));
  }

  keysWithLease(leaseId: string): string[] {
    const keys = [...this.#kvs.values()].filter((kv) => kv.lease === leaseId).map((kv) => kv.key);
    return keys.sort(compareKeys);
  }

  lease(leaseId: string): LeaseRecord | undefined {
    return this.#leases.get(leaseId);
  }

  dueLeases(now: number): string[] {
    return [...this.#leases.values()].filter((l) => l.expiresAt <= now).map((l) => l.id);
  }

  nextLeaseExpiry(): number | undefined {
    let next: number | undefined;
    for (const lease of this.#leases.values()) {
      if (next === undefined || lease.expiresAt < next) next = lease.expiresAt;
    }
    return next;
  }

  eventsAfter(afterRevision: number, prefix: string): WatchEvent[] {
    return this.#events.filter((e) => e.revision > afterRevision && e.key.startsWith(prefix));
  }

  apply(commit: Commit): void {
    for (const kv of commit.puts) this.#kvs.set(kv.key, kv);
    for (const key of commit.deletes) this.#kvs.delete(key);
    this.#events.push(...commit.events);
    this.#revision = commit.revision;
    const floor = commit.revision - this.#historyRevisions;
    if (floor > this.#compacted) {
      this.#compacted = floor;
      this.#events = this.#events.filter((e) => e.revision > floor);
    }
    for (const lease of commit.leaseUpserts) this.#leases.set(lease.id, lease);
    for (const id of commit.leaseDeletes) this.#leases.delete(id);
  }

  /** Keeps the contents: a new MemoryStore on this backend models a restart (like reopening a file). */
  close(): void {}
}
