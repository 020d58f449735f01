/**
 * The cluster store contract: etcd's data model behind one interface, so the embedded
 * single-node store and a real etcd cluster are interchangeable.
 *
 * - A single, cluster-wide revision counter increases by one per successful write
 *   transaction (a put, a delete that removed something, or a txn with writes).
 * - Each key has createRevision (revision of its creation), modRevision (of its last
 *   change) and version (number of changes since creation; 1 after creation).
 * - `txn` evaluates every compare atomically against the current state and applies
 *   either the success or the failure ops, all in one revision.
 * - Watches deliver every change under a prefix, in revision order, starting after
 *   `fromRevision` when given (resumable), or from now. A watch whose start revision
 *   was compacted away fails with DotmeshError `COMPACTED` (store-errors.ts; resume from a
 *   fresh `range` instead).
 * - Leases expire `ttlSeconds` after their last keep-alive; their keys are then
 *   deleted (a delete event each, all at one revision).
 * - Keys are non-empty strings of at most MAX_KEY_BYTES UTF-8 bytes, values strings of
 *   at most MAX_VALUE_BYTES (engine/limits.ts, exported); both must be well-formed Unicode. Keys sort
 *   by their UTF-8 bytes (= Unicode code point order), as etcd does. Breaking a limit
 *   fails with `INVALID_ARGUMENT`.
 * - A put with an unknown or expired lease, and a keep-alive of one, fail with
 *   `LEASE_NOT_FOUND` (store-errors.ts); nothing of the write is applied.
 * - Every method of a closed store fails with `UNAVAILABLE`.
 * - A write (put, delete, deletePrefix, txn) that fails with `UNAVAILABLE` and
 *   `data.outcome === 'unknown'` (store-errors.ts, `isOutcomeUnknown`) may still have been
 *   applied (a networked store timed out after sending it); read the keys it wrote to know.
 *
 * Durability: a write resolves only once it is durable (survives kill -9 and power
 * loss as far as the storage underneath honours fsync).
 */
export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  /** All keys starting with `prefix`, sorted by key, and the revision they were read at. */
  range(prefix: string): Promise<RangeResult>;
  put(key: string, value: string, options?: { lease?: string }): Promise<WriteResult>;
  /** Idempotent: deleting a missing key succeeds (and does not bump the revision). */
  delete(key: string): Promise<DeleteResult>;
  /** Deletes every key starting with `prefix` in one revision; none there → no bump. */
  deletePrefix(prefix: string): Promise<DeleteResult>;
  txn(request: TxnRequest): Promise<TxnResult>;
  /**
   * Calls `onEvents` asynchronously (never inside the write that caused them) with batches
   * of events in revision order, without gaps or duplicates; the events of one revision
   * are never split across batches. No call happens once `cancel()` has resolved.
   */
  watch(prefix: string, options: WatchOptions, onEvents: (events: readonly WatchEvent[]) => void): Promise<Watcher>;
  /** `ttlSeconds`: a positive integer. Returns the lease id. */
  grantLease(ttlSeconds: number): Promise<string>;
  /** Restarts the lease's TTL. Unknown or expired lease → LEASE_NOT_FOUND. */
  keepAlive(leaseId: string): Promise<void>;
  /** Deletes the lease and, in one revision, its keys. Idempotent: an unknown lease succeeds. */
  revokeLease(leaseId: string): Promise<void>;
  /** Current revision. */
  revision(): Promise<number>;
  /** Stops timers and watches (their `onError` gets UNAVAILABLE) and releases the store. Idempotent. */
  close(): Promise<void>;
}

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly lease?: string;
}

export interface RangeResult {
  readonly kvs: readonly KeyValue[];
  readonly revision: number;
}

export interface WriteResult {
  readonly revision: number;
}

export interface DeleteResult {
  readonly revision: number;
  readonly deleted: number;
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision';
export type CompareOp = '==' | '!=' | '<' | '>';

/**
 * A missing key compares as version 0, createRevision 0, modRevision 0; a `value` compare
 * on a missing key is false whatever the op (etcd's rule). `value` is a string for the
 * `value` target (ordered by UTF-8 bytes) and a number for the others.
 */
export interface Compare {
  readonly key: string;
  readonly target: CompareTarget;
  readonly op: CompareOp;
  readonly value: string | number;
}

export type TxnOp =
  | { readonly type: 'put'; readonly key: string; readonly value: string; readonly lease?: string }
  | { readonly type: 'delete'; readonly key: string }
  | { readonly type: 'deletePrefix'; readonly prefix: string }
  | { readonly type: 'get'; readonly key: string };

/**
 * Ops of the applied branch run in order, so a `get` sees the branch's earlier writes.
 * Within one branch a key may be written (put) at most once and not both put and deleted
 * (etcd's rule): otherwise the txn fails with INVALID_ARGUMENT before any compare.
 */
export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly TxnOp[];
  readonly failure?: readonly TxnOp[];
}

export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: number;
  /** For each `get` op of the applied branch, in order: the value read (or undefined). */
  readonly gets: readonly (KeyValue | undefined)[];
}

export interface WatchOptions {
  /** Deliver changes with revision > fromRevision (history first, then live). */
  readonly fromRevision?: number;
  /**
   * Called at most once when the watch ends other than by `cancel()` (the store closed,
   * the connection was lost for good); no events follow. Optional: without it such an end
   * is silent.
   */
  readonly onError?: (error: Error) => void;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** For puts: the new value. For deletes: undefined. */
  readonly value?: string;
  readonly revision: number;
}

export interface Watcher {
  cancel(): Promise<void>;
}
