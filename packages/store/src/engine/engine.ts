import { randomBytes } from 'node:crypto';
import { DotmeshError } from '@dotmesh/core';
import type {
  DeleteResult,
  KeyValue,
  RangeResult,
  Store,
  TxnOp,
  TxnRequest,
  TxnResult,
  WatchEvent,
  Watcher,
  WatchOptions,
  WriteResult,
} from '../store.ts';
import { compactedHistory, leaseNotFound } from '../store-errors.ts';
import type { Backend } from './backend.ts';
import type { Clock } from './clock.ts';
import { systemClock } from './clock.ts';
import { compareHolds } from './compare.ts';
import { LeaseReaper } from './lease-reaper.ts';
import { checkKey, checkLeaseId, checkPrefix, checkRevision, checkTtl, checkTxn, checkValue } from './limits.ts';
import type { StoreLogger } from './logger.ts';
import { consoleLogger } from './logger.ts';
import { WatchHub } from './watch-hub.ts';
import { WriteBatch } from './write-batch.ts';

export interface EngineOptions {
  /** Time for lease expiry; default the system clock. */
  readonly clock?: Clock;
  readonly logger?: StoreLogger;
  /** Lease id generator; default 16 random hex digits. */
  readonly newLeaseId?: () => string;
}

/**
 * The Store semantics over a synchronous Backend. Every method runs to completion in one
 * turn of the event loop (the backend is synchronous), so operations are serialised and
 * each write is atomic without locks: a txn's compares and writes see no interleaving.
 * Leases overdue while the store was closed expire when it opens.
 */
export class StoreEngine implements Store {
  readonly #backend: Backend;
  readonly #clock: Clock;
  readonly #hub: WatchHub;
  readonly #reaper: LeaseReaper;
  readonly #newLeaseId: () => string;
  #closed = false;

  constructor(backend: Backend, options: EngineOptions = {}) {
    const logger = options.logger ?? consoleLogger;
    this.#backend = backend;
    this.#clock = options.clock ?? systemClock;
    this.#newLeaseId = options.newLeaseId ?? (() => randomBytes(8).toString('hex'));
    this.#hub = new WatchHub(logger);
    this.#reaper = new LeaseReaper({
      clock: this.#clock,
      nextExpiry: () => backend.nextLeaseExpiry(),
      expire: () => this.#expireDueLeases(),
      logger,
    });
    this.#expireDueLeases();
    this.#reaper.reschedule();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.#assertOpen();
    checkKey(key);
    return this.#backend.get(key);
  }

  async range(prefix: string): Promise<RangeResult> {
    this.#assertOpen();
    checkPrefix(prefix);
    return { kvs: this.#backend.range(prefix), revision: this.#backend.revision() };
  }

  async put(key: string, value: string, options?: { lease?: string }): Promise<WriteResult> {
    this.#assertOpen();
    checkKey(key);
    checkValue(key, value);
    const lease = options?.lease;
    if (lease !== undefined) checkLeaseId(lease);
    const batch = this.#write([{ type: 'put', key, value, ...(lease === undefined ? {} : { lease }) }]);
    return { revision: batch.resultRevision };
  }

  async delete(key: string): Promise<DeleteResult> {
    this.#assertOpen();
    checkKey(key);
    const batch = this.#write([{ type: 'delete', key }]);
    return { revision: batch.resultRevision, deleted: batch.deleted };
  }

  async deletePrefix(prefix: string): Promise<DeleteResult> {
    this.#assertOpen();
    checkPrefix(prefix);
    const batch = this.#write([{ type: 'deletePrefix', prefix }]);
    return { revision: batch.resultRevision, deleted: batch.deleted };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    this.#assertOpen();
    checkTxn(request);
    const succeeded = request.compare.every((c) => compareHolds(c, this.#backend.get(c.key)));
    const batch = this.#write(succeeded ? request.success : (request.failure ?? []));
    return { succeeded, revision: batch.resultRevision, gets: batch.gets };
  }

  async watch(prefix: string, options: WatchOptions, onEvents: (events: readonly WatchEvent[]) => void): Promise<Watcher> {
    this.#assertOpen();
    checkPrefix(prefix);
    if (typeof onEvents !== 'function') throw new DotmeshError('INVALID_ARGUMENT', 'watch needs an onEvents callback');
    const current = this.#backend.revision();
    const from = options?.fromRevision;
    let replay: WatchEvent[] = [];
    if (from !== undefined) {
      checkRevision(from, 'fromRevision');
      const compacted = this.#backend.compactedRevision();
      if (from < compacted) {
        throw compactedHistory(from, compacted);
      }
      if (from < current) replay = this.#backend.eventsAfter(from, prefix);
    }
    // Synchronous from the history read to registration: no write can fall in between.
    return this.#hub.add({ prefix, after: Math.max(current, from ?? current), replay, onEvents, onError: options?.onError });
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    this.#assertOpen();
    checkTtl(ttlSeconds);
    let id = this.#newLeaseId();
    while (this.#backend.lease(id) !== undefined) id = this.#newLeaseId();
    const batch = new WriteBatch(this.#backend, this.#clock.now());
    batch.upsertLease({ id, ttlSeconds, expiresAt: this.#clock.now() + ttlSeconds * 1000 });
    this.#commit(batch);
    return id;
  }

  async keepAlive(leaseId: string): Promise<void> {
    this.#assertOpen();
    checkLeaseId(leaseId);
    const now = this.#clock.now();
    const lease = this.#backend.lease(leaseId);
    if (lease !== undefined && lease.expiresAt <= now) this.#expireDueLeases();
    if (lease === undefined || lease.expiresAt <= now) throw leaseNotFound(leaseId);
    const batch = new WriteBatch(this.#backend, now);
    batch.upsertLease({ ...lease, expiresAt: now + lease.ttlSeconds * 1000 });
    this.#commit(batch);
  }

  async revokeLease(leaseId: string): Promise<void> {
    this.#assertOpen();
    checkLeaseId(leaseId);
    if (this.#backend.lease(leaseId) === undefined) return;
    const batch = new WriteBatch(this.#backend, this.#clock.now());
    batch.dropLease(leaseId);
    this.#commit(batch);
  }

  async revision(): Promise<number> {
    this.#assertOpen();
    return this.#backend.revision();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#reaper.stop();
    this.#hub.closeAll(closedError());
    this.#backend.close();
  }

  /** Applies ops as one write; throws (with nothing applied) if an op is rejected. */
  #write(ops: readonly TxnOp[]): WriteBatch {
    const batch = new WriteBatch(this.#backend, this.#clock.now());
    for (const op of ops) batch.apply(op);
    this.#commit(batch);
    return batch;
  }

  #commit(batch: WriteBatch): void {
    if (!batch.changed) return;
    const commit = batch.toCommit();
    this.#backend.apply(commit);
    if (commit.events.length > 0) this.#hub.publish(commit.events);
    if (commit.leaseUpserts.length > 0 || commit.leaseDeletes.length > 0) this.#reaper.reschedule();
  }

  /** Deletes every overdue lease and its keys, all keys at one revision. */
  #expireDueLeases(): void {
    const due = this.#backend.dueLeases(this.#clock.now());
    if (due.length === 0) return;
    const batch = new WriteBatch(this.#backend, this.#clock.now());
    for (const id of due) batch.dropLease(id);
    this.#commit(batch);
  }

  #assertOpen(): void {
    if (this.#closed) throw closedError();
  }
}

function closedError(): DotmeshError {
  return new DotmeshError('UNAVAILABLE', 'the store is closed', { hint: 'open the store again' });
}
