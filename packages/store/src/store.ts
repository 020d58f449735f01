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
 *   was compacted away fails with COMPACTED.
 * - Leases expire `ttlSeconds` after their last keep-alive; their keys are then
 *   deleted (a delete event each).
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
  deletePrefix(prefix: string): Promise<DeleteResult>;
  txn(request: TxnRequest): Promise<TxnResult>;
  watch(prefix: string, options: WatchOptions, onEvents: (events: readonly WatchEvent[]) => void): Promise<Watcher>;
  grantLease(ttlSeconds: number): Promise<string>;
  keepAlive(leaseId: string): Promise<void>;
  revokeLease(leaseId: string): Promise<void>;
  /** Current revision. */
  revision(): Promise<number>;
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

/** A missing key compares as version 0, createRevision 0, modRevision 0, value absent. */
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
