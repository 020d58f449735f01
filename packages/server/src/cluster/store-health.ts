import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import type {
  DeleteResult,
  KeyValue,
  RangeResult,
  Store,
  TxnRequest,
  TxnResult,
  WatchEvent,
  Watcher,
  WatchOptions,
  WriteResult,
} from '@dotmesh/store';
import type { Logger } from '../log.ts';

/** How often an unavailable store is asked again whether it answers. */
const DEFAULT_PROBE_INTERVAL_MS = 1000;
/**
 * How long a probe waits for its answer: a store with a quorum answers a linearizable read in
 * milliseconds, one without never does (its own read timeout is far longer).
 */
const DEFAULT_PROBE_TIMEOUT_MS = 1500;

/**
 * The store as this server uses it, watched for availability. Every call goes to the inner
 * store unchanged. A call that fails with UNAVAILABLE (etcd lost quorum, has no leader, or
 * cannot be reached) starts a probe (`revision()`, a linearizable read, given `probeTimeoutMs`
 * to answer); if that fails too, the
 * store is unavailable, and a probe runs every `probeIntervalMs` until one answers (or any call
 * succeeds), which makes it available again. A store that never fails is never probed.
 *
 * What depends on it: writes refuse at once while the store is unavailable
 * (`assertAvailable`), instead of each waiting for its own timeout; the Authenticator uses the
 * last record it read for a user instead of asking the store. Reads served from the cluster
 * view and the pool need no store and keep working.
 */
export class StoreHealth implements Store {
  readonly #inner: Store;
  readonly #logger: Logger;
  readonly #probeIntervalMs: number;
  readonly #probeTimeoutMs: number;
  #unavailable: DotmeshError | undefined;
  #probe: NodeJS.Timeout | undefined;
  #probing = false;
  #closed = false;

  constructor(inner: Store, o: { logger: Logger; probeIntervalMs?: number; probeTimeoutMs?: number }) {
    this.#inner = inner;
    this.#logger = o.logger;
    this.#probeIntervalMs = o.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.#probeTimeoutMs = o.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  }

  /** False from a call failing with UNAVAILABLE until a probe (or any call) succeeds. */
  get available(): boolean {
    return this.#unavailable === undefined;
  }

  /** Throws UNAVAILABLE (the store's own error as the cause) while the store is unavailable. */
  assertAvailable(what: string): void {
    const cause = this.#unavailable;
    if (cause === undefined) return;
    throw new DotmeshError('UNAVAILABLE', `cannot ${what}: ${cause.message}`, {
      hint: `${cause.hint ?? 'check the cluster store'}; reads keep working, and writes resume by themselves once the store answers`,
      ...(cause.data ? { data: cause.data } : {}),
      cause,
    });
  }

  #observe<T>(call: Promise<T>): Promise<T> {
    return call.then(
      (value) => {
        this.#markAvailable();
        return value;
      },
      (err: unknown) => {
        if (isDotmeshError(err) && err.code === 'UNAVAILABLE') this.#markUnavailable(err);
        throw err;
      },
    );
  }

  /**
   * A call failed with UNAVAILABLE. One etcd endpoint down (a removed or dead member) fails some
   * calls while the cluster is fine, so the store counts as unavailable only once a probe of its
   * own fails too; then probes run until one answers.
   */
  #markUnavailable(err: DotmeshError): void {
    if (this.#closed) return;
    if (this.#unavailable !== undefined) {
      this.#unavailable = err;
      return;
    }
    this.#probeOnce((probeErr) => {
      if (this.#closed || this.#unavailable !== undefined) return;
      this.#unavailable = isDotmeshError(probeErr) && probeErr.code === 'UNAVAILABLE' ? probeErr : err;
      this.#logger.warn(
        { err: this.#unavailable },
        'the cluster store is unavailable: writes are refused until it answers again',
      );
      this.#probe = setInterval(() => this.#probeOnce(() => {}), this.#probeIntervalMs);
      this.#probe.unref();
    });
  }

  /** One probe at a time: an answer makes the store available, a failure goes to `onFailure`. */
  #probeOnce(onFailure: (err: unknown) => void): void {
    if (this.#probing) return;
    this.#probing = true;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new DotmeshError(
              'UNAVAILABLE',
              `the cluster store is unavailable: no answer to a read within ${this.#probeTimeoutMs} ms`,
              {
                hint: 'check that etcd has a quorum and that this node reaches its members',
              },
            ),
          ),
        this.#probeTimeoutMs,
      );
    });
    Promise.race([this.#inner.revision(), late])
      .then(() => this.#markAvailable(), onFailure)
      .finally(() => {
        clearTimeout(timer);
        this.#probing = false;
      });
  }

  #markAvailable(): void {
    if (this.#unavailable === undefined) return;
    this.#unavailable = undefined;
    clearInterval(this.#probe);
    this.#probe = undefined;
    this.#logger.info({}, 'the cluster store answers again: writes resume');
  }

  get(key: string): Promise<KeyValue | undefined> {
    return this.#observe(this.#inner.get(key));
  }
  range(prefix: string): Promise<RangeResult> {
    return this.#observe(this.#inner.range(prefix));
  }
  put(key: string, value: string, options?: { lease?: string }): Promise<WriteResult> {
    return this.#observe(this.#inner.put(key, value, options));
  }
  delete(key: string): Promise<DeleteResult> {
    return this.#observe(this.#inner.delete(key));
  }
  deletePrefix(prefix: string): Promise<DeleteResult> {
    return this.#observe(this.#inner.deletePrefix(prefix));
  }
  txn(request: TxnRequest): Promise<TxnResult> {
    return this.#observe(this.#inner.txn(request));
  }
  watch(prefix: string, options: WatchOptions, onEvents: (events: readonly WatchEvent[]) => void): Promise<Watcher> {
    return this.#observe(this.#inner.watch(prefix, options, onEvents));
  }
  grantLease(ttlSeconds: number): Promise<string> {
    return this.#observe(this.#inner.grantLease(ttlSeconds));
  }
  keepAlive(leaseId: string): Promise<void> {
    return this.#observe(this.#inner.keepAlive(leaseId));
  }
  revokeLease(leaseId: string): Promise<void> {
    return this.#observe(this.#inner.revokeLease(leaseId));
  }
  revision(): Promise<number> {
    return this.#observe(this.#inner.revision());
  }
  /** Stops probing (the server stops) without closing the inner store. */
  stop(): void {
    this.#closed = true;
    clearInterval(this.#probe);
    this.#probe = undefined;
  }
  async close(): Promise<void> {
    this.stop();
    await this.#inner.close();
  }
}
