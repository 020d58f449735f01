import { DotmeshError, type ErrorObject, errorObject } from '@dotmesh/core';
import type { TransferPollResult } from '@dotmesh/rpc';
import type { Store } from '@dotmesh/store';
import type { TransferLogger } from './host.ts';

/** The original's key for transfer records (any node's GetTransfer reads them). */
export const TRANSFERS_PREFIX = 'dotmesh.io/filesystems/transfers/';
/** Records kept in memory and in the store after they finished, newest first. */
const KEEP_FINISHED = 200;

export const INTERRUPTED_MESSAGE = 'the transfer was interrupted by a restart of dotmesh-server; run it again to resume';

/** The structured error of a record cut by a restart (its Message is INTERRUPTED_MESSAGE). */
/** A stored record, or undefined when the value is not one. */
function parseRecord(value: string): (TransferPollResult & { owner: string; startedAt?: number }) | undefined {
  try {
    const r = JSON.parse(value) as TransferPollResult & { owner: string };
    return typeof r?.TransferRequestId === 'string' && typeof r.owner === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

export function interruptedError(): ErrorObject {
  return errorObject(new DotmeshError('UNAVAILABLE', INTERRUPTED_MESSAGE, { hint: 'run the same push, pull or clone again' }));
}

/**
 * Transfer records (TransferPollResult) in memory, written through to the store at every
 * status change and at most once a second for progress. The peer's API key is never part of
 * a record: `ApiKey` is always "" (the key lives only in the running transfer's memory).
 * A failure is kept twice: `Message` (the human text the original's clients print) and
 * `Error` (code, message, hint and data; null while nothing failed). Each record names the node
 * running it (`InitiatorNodeId`) and outlives that node's lease; at start a node ends its own
 * records of transfers that were running when it stopped (`error`, UNAVAILABLE) and never
 * touches another node's.
 */
export class TransferRecords {
  readonly #store: Store;
  readonly #logger: TransferLogger;
  readonly #records = new Map<string, TransferPollResult & { owner: string; startedAt?: number }>();
  readonly #lastWrite = new Map<string, number>();
  readonly #writing = new Map<string, Promise<void>>();
  readonly #nodeId: string;

  constructor(store: Store, logger: TransferLogger, nodeId: string) {
    this.#store = store;
    this.#logger = logger;
    this.#nodeId = nodeId;
  }

  /** Loads stored records; marks this node's that were still running as interrupted. */
  async load(): Promise<void> {
    const { kvs } = await this.#store.range(TRANSFERS_PREFIX);
    for (const kv of kvs) {
      let r: TransferPollResult & { owner: string };
      try {
        r = JSON.parse(kv.value);
      } catch {
        continue;
      }
      if (typeof r?.TransferRequestId !== 'string') continue;
      this.#records.set(r.TransferRequestId, r);
      if (r.InitiatorNodeId === this.#nodeId && r.Status !== 'finished' && r.Status !== 'error') {
        this.update(r.TransferRequestId, { Status: 'error', Message: INTERRUPTED_MESSAGE, Error: interruptedError() }, true);
      }
    }
  }

  create(record: TransferPollResult, owner: string): void {
    this.#records.set(record.TransferRequestId, { ...record, ApiKey: '', owner, startedAt: Date.now() });
    this.#persist(record.TransferRequestId, true);
    this.#prune();
  }

  /** Applies a change; `important` (status changes) are written at once, progress ≤ 1/s. */
  update(id: string, change: Partial<TransferPollResult>, important = false): void {
    const r = this.#records.get(id);
    if (!r) return;
    Object.assign(r, change, { ApiKey: '' });
    this.#persist(id, important);
  }

  /**
   * The record for its owner (or admin); other callers get the original's not-found text. A
   * transfer another node runs is read from the store (its node writes it there at every status
   * change and once a second while it moves data).
   */
  async get(id: string, callerId: string, isAdmin: boolean): Promise<TransferPollResult> {
    let r = this.#records.get(id);
    // Another node's transfer: its record as the store has it now (one loaded at start is old).
    if (r?.InitiatorNodeId !== this.#nodeId && /^[A-Za-z0-9-]{1,100}$/.test(id)) {
      const kv = await this.#store.get(`${TRANSFERS_PREFIX}${id}`);
      const stored = kv ? parseRecord(kv.value) : undefined;
      if (stored && stored.InitiatorNodeId !== this.#nodeId) r = stored;
    }
    if (!r || (!isAdmin && r.owner !== callerId)) {
      throw new DotmeshError('DOT_NOT_FOUND', `No such intercluster transfer ${id}`, { data: { transferId: id } });
    }
    const { owner: _owner, startedAt, ...result } = r;
    // A running transfer's elapsed time is current at every poll, between progress updates too.
    const running = r.Status !== 'finished' && r.Status !== 'error' && startedAt !== undefined;
    const elapsed = running ? Math.max(r.NanosecondsElapsed, (Date.now() - startedAt) * 1e6) : r.NanosecondsElapsed;
    return { ...result, ApiKey: '', NanosecondsElapsed: elapsed, Error: r.Error ?? null };
  }

  #persist(id: string, important: boolean): void {
    const r = this.#records.get(id);
    if (!r) return;
    const now = Date.now();
    if (!important && now - (this.#lastWrite.get(id) ?? 0) < 1000) return;
    this.#lastWrite.set(id, now);
    // One write at a time per record, in order: a progress write still in flight must never
    // land after the final status (other nodes read the record from the store).
    const value = JSON.stringify({ ...r, ApiKey: '', startedAt: undefined });
    const write = (this.#writing.get(id) ?? Promise.resolve())
      .then(async () => {
        await this.#store.put(`${TRANSFERS_PREFIX}${id}`, value);
      })
      .catch((err: unknown) => this.#logger.warn({ err, transfer: id }, 'could not store a transfer record'))
      .finally(() => {
        if (this.#writing.get(id) === write) this.#writing.delete(id);
      });
    this.#writing.set(id, write);
  }

  #prune(): void {
    const done = [...this.#records.values()].filter(
      (r) => r.InitiatorNodeId === this.#nodeId && (r.Status === 'finished' || r.Status === 'error'),
    );
    for (const r of done.slice(0, Math.max(0, done.length - KEEP_FINISHED))) {
      this.#records.delete(r.TransferRequestId);
      this.#lastWrite.delete(r.TransferRequestId);
      this.#store.delete(`${TRANSFERS_PREFIX}${r.TransferRequestId}`).catch(() => undefined);
    }
  }
}
