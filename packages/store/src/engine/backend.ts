import type { KeyValue, WatchEvent } from '../store.ts';

/**
 * The persistence underneath StoreEngine: dumb, synchronous storage of keys, leases and the
 * event history. All store semantics (revisions, versions, compares, lease rules, watches)
 * live in the engine; a backend only reads and atomically applies what the engine computed.
 *
 * Contract: single-threaded use by one engine. `apply` is all-or-nothing and durable when it
 * returns; on failure it throws (a DotmeshError) and the state is unchanged.
 */
export interface Backend {
  /** Revision of the last applied write (0 for a new store). */
  revision(): number;
  /** Events with revision ≤ this are gone from the history. */
  compactedRevision(): number;
  get(key: string): KeyValue | undefined;
  /** Keys starting with `prefix`, in compareKeys order. */
  range(prefix: string): KeyValue[];
  /** Keys attached to the lease. */
  keysWithLease(leaseId: string): string[];
  lease(leaseId: string): LeaseRecord | undefined;
  /** Ids of the leases with expiresAt ≤ now. */
  dueLeases(now: number): string[];
  /** Earliest expiresAt of all leases, undefined when there are none. */
  nextLeaseExpiry(): number | undefined;
  /** History events with revision > `afterRevision` whose key starts with `prefix`, in order. */
  eventsAfter(afterRevision: number, prefix: string): WatchEvent[];
  apply(commit: Commit): void;
  close(): void;
}

export interface LeaseRecord {
  readonly id: string;
  readonly ttlSeconds: number;
  /** Wall-clock milliseconds at which the lease is expired. */
  readonly expiresAt: number;
}

/**
 * One atomic write. When `events` is empty nothing about keys changed and `revision` equals
 * the current revision (a lease-only change); otherwise it is the current revision + 1 and
 * `puts`/`deletes` hold exactly the keys the events name.
 */
export interface Commit {
  readonly revision: number;
  /** Final state of each written key. */
  readonly puts: readonly KeyValue[];
  readonly deletes: readonly string[];
  readonly events: readonly WatchEvent[];
  readonly leaseUpserts: readonly LeaseRecord[];
  readonly leaseDeletes: readonly string[];
}
