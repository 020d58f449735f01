import type { Etcd3 } from 'etcd3';

interface Slot {
  readonly client: Etcd3;
  /** Calls running on this client. */
  users: number;
  /** Replaced: closes once its last call ended. */
  retired: boolean;
}

/**
 * An etcd3 client that can be replaced by another (one for other endpoints: the etcd3 client
 * cannot change its hosts) while calls run. Each call (`use`) runs on the client that is
 * current when it starts; a replaced client is closed once its last call ended. Streams that
 * outlive a call (watches) must be moved to the new client by their owner.
 */
export class SwappableClient {
  #current: Slot;
  readonly #retired = new Set<Slot>();

  constructor(client: Etcd3) {
    this.#current = { client, users: 0, retired: false };
  }

  get current(): Etcd3 {
    return this.#current.client;
  }

  async use<T>(fn: (client: Etcd3) => Promise<T>): Promise<T> {
    const slot = this.#current;
    slot.users++;
    try {
      return await fn(slot.client);
    } finally {
      slot.users--;
      this.#closeIfIdle(slot);
    }
  }

  /** Makes `next` the client of every later call; the one it replaces closes once idle. */
  replace(next: Etcd3): void {
    const old = this.#current;
    this.#current = { client: next, users: 0, retired: false };
    old.retired = true;
    this.#retired.add(old);
    this.#closeIfIdle(old);
  }

  /** Closes every client now (running calls fail). */
  close(): void {
    this.#current.client.close();
    for (const slot of this.#retired) slot.client.close();
    this.#retired.clear();
  }

  #closeIfIdle(slot: Slot): void {
    if (!slot.retired || slot.users > 0 || !this.#retired.has(slot)) return;
    this.#retired.delete(slot);
    slot.client.close();
  }
}
