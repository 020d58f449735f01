import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import { noop } from 'cockatiel';
import { Etcd3 } from 'etcd3';
import { checkKey, checkLeaseId, checkPrefix, checkRevision, checkTtl, checkTxn, checkValue } from '../engine/limits.ts';
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
} from '../store.ts';
import { compactedHistory, leaseNotFound, outcomeUnknown } from '../store-errors.ts';
import { KeyCodec, leaseToEtcd, leaseToStore } from './codec.ts';
import { etcdCredentials } from './credentials.ts';
import { EtcdErrors } from './errors.ts';
import { keepAliveWithin } from './lease.ts';
import { type CallOptions, readOnMembers, writeOnMembers } from './member-calls.ts';
import { MemberClients } from './member-clients.ts';
import { SwappableClient } from './swappable-client.ts';
import { fromEtcdTxn, leasesOf, toEtcdTxn } from './txn.ts';
import { EtcdWatch } from './watch.ts';

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. `https://10.0.0.1:2379`. At least one. */
  readonly endpoints: readonly string[];
  /** PEM CA bundle that signed the etcd server certificates (enables TLS). */
  readonly ca?: Buffer;
  /** PEM client certificate and key, for etcd run with --client-cert-auth. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** Every key of this store lives under this etcd key prefix; default '' (none). */
  readonly prefix?: string;
  /** How long `open` waits for etcd to answer; default 5000 ms. */
  readonly dialTimeoutMs?: number;
  /**
   * How long a read (and a lease call, and a watch's creation) may take in all, its attempts
   * on other members included; default 10000 ms.
   */
  readonly requestTimeoutMs?: number;
  /**
   * How long a write (put, delete, txn) may take in all, retries included; default 1500 ms.
   * etcd commits a write in milliseconds when it has a quorum; without one it never answers,
   * so this is how long a write waits before failing with UNAVAILABLE (outcome unknown).
   */
  readonly writeTimeoutMs?: number;
}

/** Default of EtcdStoreOptions.writeTimeoutMs. */
export const DEFAULT_WRITE_TIMEOUT_MS = 1500;

/** Large enough for a range of many 4 MiB values; grpc-js defaults to 4 MiB. */
const MAX_RECEIVE_BYTES = 1024 * 1024 * 1024;

/**
 * The Store contract on a real etcd (v3 API) through the etcd3 client. Revisions, versions,
 * leases and watches are etcd's own, so several servers share one store. Lease ids are etcd's
 * int64 ids in hex (as etcdctl prints them). etcd must accept the contract's limits: run it
 * with `--max-request-bytes` above MAX_VALUE_BYTES (e.g. 8388608) and `--max-txn-ops` above
 * the largest transaction the server writes (e.g. 10000); a refusal is INVALID_ARGUMENT.
 * Each call has one deadline for all its attempts (on one member after another), so no call
 * takes longer than its timeout; a write that fails with UNAVAILABLE may still have been
 * applied (etcd's usual ambiguity) and says so (`data.outcome: 'unknown'`, store-errors.ts).
 */
export class EtcdStore implements Store {
  readonly prefix: string;
  readonly #options: EtcdStoreOptions;
  #endpoints: readonly string[];
  readonly #clients: SwappableClient;
  /**
   * Clients bound to one member each, without the etcd3 client's retries, for every call but
   * watches: calls choose the member themselves, so a stuck one costs one attempt.
   */
  readonly #members: MemberClients;
  readonly #codec: KeyCodec;
  #errors: EtcdErrors;
  readonly #requestTimeoutMs: number;
  readonly #writeTimeoutMs: number;
  readonly #watches = new Set<EtcdWatch>();
  /** The endpoint change running (they run one at a time). */
  #switching: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(client: Etcd3, options: EtcdStoreOptions) {
    this.#options = options;
    this.#clients = new SwappableClient(client);
    this.#endpoints = [...options.endpoints];
    this.#members = new MemberClients(this.#endpoints, (endpoint) =>
      newClient({ ...options, endpoints: [endpoint] }, { retries: false }),
    );
    this.prefix = options.prefix ?? '';
    this.#codec = new KeyCodec(this.prefix);
    this.#errors = new EtcdErrors(this.#endpoints);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
  }

  /** The etcd client URLs this store uses now. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Connects and checks that etcd answers; UNAVAILABLE (naming the endpoints) if not. */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    validateOptions(options);
    const client = await connect(options, new EtcdErrors(options.endpoints));
    return new EtcdStore(client, options);
  }

  /**
   * Uses other endpoints of the same etcd cluster from now on (its members changed), without
   * losing anything: a client for them must answer first (else UNAVAILABLE naming them, and
   * the store keeps its endpoints); then every watch moves to it, resuming after the last
   * revision it delivered; calls started before finish on the old client, which closes after
   * them. Leases are etcd's, so their ids stay valid. The same set of endpoints (in any order)
   * changes nothing; resolves with whether the endpoints changed.
   */
  setEndpoints(endpoints: readonly string[]): Promise<boolean> {
    const run = this.#switching.then(() => this.#setEndpoints(endpoints));
    this.#switching = run.catch(() => undefined);
    return run;
  }

  async #setEndpoints(endpoints: readonly string[]): Promise<boolean> {
    this.#assertOpen();
    const options = { ...this.#options, endpoints: [...endpoints] };
    validateOptions(options);
    if (sameEndpoints(endpoints, this.#endpoints)) return false;
    const errors = new EtcdErrors(options.endpoints);
    const client = await connect(options, errors);
    if (this.#closed) {
      client.close();
      throw closedError();
    }
    const moving = [...this.#watches];
    try {
      for (const watch of moving) await watch.moveTo(client, errors);
    } catch (e) {
      // Watches already moved go back; the new client is dropped.
      for (const watch of moving)
        await watch.moveTo(this.#clients.current, this.#errors).catch((err: unknown) => watch.fail(err as Error));
      client.close();
      throw errors.map(e);
    }
    this.#endpoints = options.endpoints;
    this.#errors = errors;
    this.#clients.replace(client);
    this.#members.setEndpoints(options.endpoints);
    // Watches created on the old client meanwhile follow.
    for (const watch of [...this.#watches]) {
      await watch.moveTo(client, errors).catch((err: unknown) => watch.fail(errors.map(err)));
    }
    return true;
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.#assertOpen();
    checkKey(key);
    const res = await this.#call((c, o) => c.kv.range({ key: this.#codec.encode(key) }, o));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : this.#codec.keyValue(kv);
  }

  async range(prefix: string): Promise<RangeResult> {
    this.#assertOpen();
    checkPrefix(prefix);
    const res = await this.#call((c, o) => c.kv.range(this.#codec.range(prefix), o));
    return { kvs: res.kvs.map((kv) => this.#codec.keyValue(kv)), revision: Number(res.header.revision) };
  }

  async put(key: string, value: string, options?: { lease?: string }): Promise<WriteResult> {
    this.#assertOpen();
    checkKey(key);
    checkValue(key, value);
    const lease = options?.lease;
    let etcdLease: string | undefined;
    if (lease !== undefined) {
      checkLeaseId(lease);
      etcdLease = leaseToEtcd(lease);
      if (etcdLease === undefined) throw leaseNotFound(lease);
    }
    const req = { key: this.#codec.encode(key), value: Buffer.from(value, 'utf8'), ...(etcdLease ? { lease: etcdLease } : {}) };
    const res = await this.#write((c, o) => c.kv.put(req, o), lease === undefined ? [] : [lease]);
    return { revision: Number(res.header.revision) };
  }

  async delete(key: string): Promise<DeleteResult> {
    this.#assertOpen();
    checkKey(key);
    const res = await this.#write((c, o) => c.kv.deleteRange({ key: this.#codec.encode(key) }, o));
    return { revision: Number(res.header.revision), deleted: Number(res.deleted) };
  }

  async deletePrefix(prefix: string): Promise<DeleteResult> {
    this.#assertOpen();
    checkPrefix(prefix);
    const res = await this.#write((c, o) => c.kv.deleteRange(this.#codec.range(prefix), o));
    return { revision: Number(res.header.revision), deleted: Number(res.deleted) };
  }

  async txn(request: TxnRequest): Promise<TxnResult> {
    this.#assertOpen();
    checkTxn(request);
    const res = await this.#write((c, o) => c.kv.txn(toEtcdTxn(this.#codec, request), o), leasesOf(request));
    return fromEtcdTxn(this.#codec, request, res);
  }

  async watch(prefix: string, options: WatchOptions, onEvents: (events: readonly WatchEvent[]) => void): Promise<Watcher> {
    this.#assertOpen();
    checkPrefix(prefix);
    if (typeof onEvents !== 'function') throw new DotmeshError('INVALID_ARGUMENT', 'watch needs an onEvents callback');
    const from = options?.fromRevision;
    if (from !== undefined) {
      checkRevision(from, 'fromRevision');
      await this.#checkNotCompacted(from);
    }
    // Started on the current client, kept open (`use`) until the watch is on the current one.
    const watch = await this.#clients.use(async (client) => {
      const started = await EtcdWatch.start({
        client,
        codec: this.#codec,
        errors: this.#errors,
        prefix,
        fromRevision: from,
        onEvents,
        onError: options?.onError,
        timeoutMs: this.#requestTimeoutMs,
        onEnd: (w) => this.#watches.delete(w),
        whyCanceled: (resumeAfter, err) => this.#whyCanceled(resumeAfter, err),
      });
      if (started.client !== this.#clients.current) {
        await started.moveTo(this.#clients.current, this.#errors).catch(async (e: unknown) => {
          await started.cancel();
          throw this.#errors.map(e);
        });
      }
      return started;
    });
    if (this.#closed) {
      await watch.cancel();
      throw closedError();
    }
    this.#watches.add(watch);
    return watch;
  }

  async grantLease(ttlSeconds: number): Promise<string> {
    this.#assertOpen();
    checkTtl(ttlSeconds);
    const res = await this.#call((c, o) => c.leaseClient.leaseGrant({ TTL: ttlSeconds }, o));
    if (res.error) throw new DotmeshError('INTERNAL', `etcd refused the lease: ${res.error}`);
    return leaseToStore(res.ID) as string;
  }

  async keepAlive(leaseId: string): Promise<void> {
    this.#assertOpen();
    checkLeaseId(leaseId);
    const id = leaseToEtcd(leaseId);
    if (id === undefined) throw leaseNotFound(leaseId);
    const ttl = await this.#mapErrors(() => keepAliveWithin(this.#members, id, this.#requestTimeoutMs), [leaseId]);
    if (ttl <= 0) throw leaseNotFound(leaseId);
  }

  async revokeLease(leaseId: string): Promise<void> {
    this.#assertOpen();
    checkLeaseId(leaseId);
    const id = leaseToEtcd(leaseId);
    if (id === undefined) return;
    try {
      await this.#call((c, o) => c.leaseClient.leaseRevoke({ ID: id }, o), [leaseId]);
    } catch (e) {
      if (isDotmeshError(e) && e.code === 'LEASE_NOT_FOUND') return;
      throw e;
    }
  }

  async revision(): Promise<number> {
    this.#assertOpen();
    const res = await this.#call((c, o) => c.kv.range({ key: Buffer.from([0]), count_only: true }, o));
    return Number(res.header.revision);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const error = closedError();
    for (const watch of [...this.#watches]) watch.fail(error);
    this.#watches.clear();
    this.#clients.close();
    this.#members.close();
  }

  /** A watch from `from` needs the history after it: reading at revision from+1 proves it is there. */
  async #checkNotCompacted(from: number): Promise<void> {
    const current = await this.revision();
    if (from >= current) return;
    await this.#call((c, o) => c.kv.range({ key: Buffer.from([0]), count_only: true, revision: String(from + 1) }, o)).catch(
      (e: unknown) => {
        throw isDotmeshError(e) && e.code === 'COMPACTED' ? compactedHistory(from, undefined, e) : e;
      },
    );
  }

  /** A watch etcd canceled: its history is gone (COMPACTED), or whatever etcd said. */
  async #whyCanceled(resumeAfter: number, err: Error): Promise<Error> {
    if (this.#closed) return closedError();
    try {
      await this.#checkNotCompacted(resumeAfter);
    } catch (e) {
      return e instanceof Error ? e : this.#errors.map(e);
    }
    return this.#errors.map(err);
  }

  /**
   * A read or lease call: on one member after another while they fail with connection trouble
   * or etcd's "not now" (member-calls.ts), all within the request timeout.
   */
  #call<T>(fn: (client: Etcd3, options: CallOptions) => Promise<T>, leases: readonly string[] = []): Promise<T> {
    const options = { deadline: Date.now() + this.#requestTimeoutMs };
    const retryable = (e: unknown) => this.#errors.map(e, leases).code === 'UNAVAILABLE';
    return this.#mapErrors(() => readOnMembers(this.#members, options, retryable, fn), leases);
  }

  /**
   * A write: on one member after another until one takes it (member-calls.ts), all within the write
   * timeout. Failing with UNAVAILABLE it may still have been applied (a timeout after it reached
   * etcd), so the error says the outcome is unknown.
   */
  async #write<T>(fn: (client: Etcd3, options: CallOptions) => Promise<T>, leases: readonly string[] = []): Promise<T> {
    const options = { deadline: Date.now() + this.#writeTimeoutMs };
    try {
      return await this.#mapErrors(() => writeOnMembers(this.#members, options, fn), leases);
    } catch (e) {
      throw isDotmeshError(e) && !this.#closed ? outcomeUnknown(e) : e;
    }
  }

  /** `fn`'s result, its failure as a DotmeshError (leases named in it are the ones of `leases`). */
  async #mapErrors<T>(fn: () => Promise<T>, leases: readonly string[]): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.#closed ? closedError() : this.#errors.map(e, leases);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw closedError();
  }
}

/**
 * A client for `options` (it connects on its first call). Its calls get their deadline from
 * the store (`CallOptions`); the fallback here is for calls made without one.
 */
function newClient(options: EtcdStoreOptions, o: { retries: boolean } = { retries: true }): Etcd3 {
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  return new Etcd3({
    hosts: [...options.endpoints],
    ...(o.retries ? {} : { faultHandling: { global: noop, host: () => noop } }),
    ...etcdCredentials(options),
    grpcOptions: { 'grpc.max_receive_message_length': MAX_RECEIVE_BYTES },
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs }),
  });
}

/** A client for `options` that answered a read within the dial timeout (else UNAVAILABLE). */
async function connect(options: EtcdStoreOptions, errors: EtcdErrors): Promise<Etcd3> {
  const client = newClient(options);
  const dialTimeoutMs = options.dialTimeoutMs ?? 5000;
  try {
    await client.kv.range({ key: Buffer.from([0]), count_only: true }, { deadline: Date.now() + dialTimeoutMs });
  } catch (e) {
    client.close();
    throw errors.unavailable(`no answer within ${dialTimeoutMs} ms (${(e as Error).message})`, e);
  }
  return client;
}

/** Whether two lists name the same endpoints (order and repeats aside). */
export function sameEndpoints(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a);
  const y = new Set(b);
  return x.size === y.size && [...x].every((e) => y.has(e));
}

function validateOptions(options: EtcdStoreOptions): void {
  if (!Array.isArray(options?.endpoints) || options.endpoints.length === 0) {
    throw new DotmeshError('INVALID_ARGUMENT', 'EtcdStore needs at least one etcd endpoint', {
      hint: 'give the client URLs, e.g. https://127.0.0.1:2379',
    });
  }
  for (const endpoint of options.endpoints) {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) {
      throw new DotmeshError('INVALID_ARGUMENT', `invalid etcd endpoint ${JSON.stringify(endpoint)}`, {
        hint: 'an endpoint is a URL like http://127.0.0.1:2379 or https://etcd-1:2379',
      });
    }
  }
  const https = options.endpoints.filter((e) => e.startsWith('https:')).length;
  if (https !== 0 && https !== options.endpoints.length) {
    throw new DotmeshError('INVALID_ARGUMENT', 'etcd endpoints must be all https or all http');
  }
  if ((https === 0) !== (options.ca === undefined)) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      https === 0 ? 'a CA file is given but the etcd endpoints are plain http' : 'https etcd endpoints need the CA file',
      { hint: 'give --etcd-ca-file with https:// endpoints, and neither CA nor certificates with http:// ones' },
    );
  }
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new DotmeshError('INVALID_ARGUMENT', 'an etcd client certificate needs its key, and a key its certificate');
  }
  const prefix = options.prefix ?? '';
  if (typeof prefix !== 'string' || !prefix.isWellFormed())
    throw new DotmeshError('INVALID_ARGUMENT', 'the etcd key prefix must be a string');
}

function closedError(): DotmeshError {
  return new DotmeshError('UNAVAILABLE', 'the store is closed', { hint: 'open the store again' });
}
