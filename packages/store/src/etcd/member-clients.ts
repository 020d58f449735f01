import type { Etcd3 } from 'etcd3';

/** How long a client of an endpoint no longer listed stays open for the calls under way on it. */
const RETIRED_CLOSE_MS = 30_000;

/**
 * One etcd3 client per endpoint, for calls that must choose which member they reach (the
 * etcd3 client picks a member at random for each call, so retries can land on the same stuck
 * member again and again). Clients are made on first use. The endpoint that answered last is
 * tried first next time, so a member that accepts connections but never answers costs one
 * attempt, not one per call.
 */
export class MemberClients {
  readonly #make: (endpoint: string) => Etcd3;
  readonly #clients = new Map<string, Etcd3>();
  /** Clients of endpoints no longer listed, until they close. */
  readonly #retired = new Set<Etcd3>();
  #endpoints: readonly string[];
  #preferred: string | undefined;
  #closed = false;

  constructor(endpoints: readonly string[], make: (endpoint: string) => Etcd3) {
    this.#endpoints = [...endpoints];
    this.#make = make;
  }

  /** The endpoints in the order to try them: the one that answered last, then the others in turn. */
  order(): string[] {
    const start = Math.max(0, this.#endpoints.indexOf(this.#preferred ?? ''));
    return [...this.#endpoints.slice(start), ...this.#endpoints.slice(0, start)];
  }

  /** The client of `endpoint` (made now if it is new). */
  client(endpoint: string): Etcd3 {
    if (this.#closed) throw new Error('the etcd member clients are closed');
    let client = this.#clients.get(endpoint);
    if (client === undefined) {
      client = this.#make(endpoint);
      this.#clients.set(endpoint, client);
    }
    return client;
  }

  /** Records that `endpoint` answered: it is tried first from now on. */
  answered(endpoint: string): void {
    this.#preferred = endpoint;
  }

  /** Records that `endpoint` did not answer in time: if it was tried first, the next one is from now on. */
  missed(endpoint: string): void {
    if (this.#preferred !== undefined && this.#preferred !== endpoint) return;
    const at = this.#endpoints.indexOf(endpoint);
    this.#preferred = this.#endpoints[(at + 1) % this.#endpoints.length];
  }

  /**
   * Uses these endpoints from now on; the clients of endpoints no longer listed close once the
   * calls under way on them had their time (RETIRED_CLOSE_MS), or at `close()`.
   */
  setEndpoints(endpoints: readonly string[]): void {
    this.#endpoints = [...endpoints];
    for (const [endpoint, client] of this.#clients) {
      if (endpoints.includes(endpoint)) continue;
      this.#clients.delete(endpoint);
      this.#retired.add(client);
      setTimeout(() => {
        if (this.#retired.delete(client)) client.close();
      }, RETIRED_CLOSE_MS).unref();
    }
  }

  close(): void {
    this.#closed = true;
    for (const client of [...this.#clients.values(), ...this.#retired]) client.close();
    this.#clients.clear();
    this.#retired.clear();
  }
}
