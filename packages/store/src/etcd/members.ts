import { DotmeshError } from '@dotmesh/core';
import { Etcd3 } from 'etcd3';
import { etcdCredentials } from './credentials.ts';
import { SwappableClient } from './swappable-client.ts';

/** One member of an etcd cluster, as its cluster API reports it. */
export interface EtcdMember {
  /** etcd's member id (decimal, as the API sends it). */
  readonly id: string;
  /** Empty until the member has started once. */
  readonly name: string;
  readonly peerUrls: readonly string[];
  /** Empty until the member has started once. */
  readonly clientUrls: readonly string[];
  readonly learner: boolean;
}

/** One member's own state, as its Maintenance Status reports it. */
export interface EtcdMemberState {
  /** The highest raft index the member knows committed. */
  readonly raftIndex: number;
  /** The revision of its key-value store (every write that changed a key raised it). */
  readonly revision: number;
  /** The cluster's id (decimal). */
  readonly clusterId: string;
}

export interface EtcdMembersOptions {
  /** Client URLs to send the cluster calls to (any member; learners do not answer them). */
  readonly endpoints: readonly string[];
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** Deadline of each call; default 10000 ms. */
  readonly requestTimeoutMs?: number;
}

/**
 * etcd's cluster API (v3 `Cluster` service) through the etcd3 client: list, add as learner,
 * promote, update (peer URLs) and remove members. Errors are UNAVAILABLE naming the endpoints, with etcd's own
 * message (e.g. "etcdserver: can only promote a learner member which is in sync with leader").
 */
export class EtcdMembers {
  readonly #options: EtcdMembersOptions;
  readonly #clients: SwappableClient;
  #endpoints: readonly string[];

  constructor(o: EtcdMembersOptions) {
    this.#options = o;
    this.#endpoints = [...o.endpoints];
    this.#clients = new SwappableClient(clientFor(o));
  }

  /** The client URLs the calls go to now. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Sends later calls to `endpoints` (the members changed); calls running finish where they are. */
  setEndpoints(endpoints: readonly string[]): void {
    const next = clientFor({ ...this.#options, endpoints });
    this.#endpoints = [...endpoints];
    this.#clients.replace(next);
  }

  async list(): Promise<EtcdMember[]> {
    const res = await this.#call('list the members', (c) => c.cluster.memberList({ linearizable: true }));
    return res.members.map(toMember);
  }

  /** Adds a non-voting member that will listen at `peerUrl`; returns it and every member then. */
  async addLearner(peerUrl: string): Promise<{ added: EtcdMember; members: EtcdMember[] }> {
    const res = await this.#call(`add a learner at ${peerUrl}`, (c) =>
      c.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true }),
    );
    return { added: toMember(res.member), members: res.members.map(toMember) };
  }

  /** Makes a learner a voting member; etcd refuses while it has not caught up with the leader. */
  async promote(id: string): Promise<void> {
    await this.#call(`promote member ${id}`, (c) => c.cluster.memberPromote({ ID: id }));
  }

  /**
   * Changes the peer URLs of member `id` (a member whose host has a new address): the other
   * members dial it there from then on. etcd takes it while a majority of the members answer;
   * the member itself need not run.
   */
  async update(id: string, peerUrls: readonly string[]): Promise<void> {
    await this.#call(`update member ${id} to ${peerUrls.join(',')}`, (c) =>
      c.cluster.memberUpdate({ ID: id, peerURLs: [...peerUrls] }),
    );
  }

  /**
   * The answering member's own state (etcd's Maintenance Status, answered by that member alone):
   * its committed raft index and its store's revision. Send it to one endpoint to know whose.
   */
  async status(): Promise<EtcdMemberState> {
    const res = await this.#call('read the member status', (c) => c.maintenance.status());
    return { raftIndex: Number(res.raftIndex), revision: Number(res.header.revision), clusterId: String(res.header.cluster_id) };
  }

  async remove(id: string): Promise<void> {
    await this.#call(`remove member ${id}`, (c) => c.cluster.memberRemove({ ID: id }));
  }

  close(): void {
    this.#clients.close();
  }

  async #call<T>(what: string, f: (client: Etcd3) => Promise<T>): Promise<T> {
    const endpoints = this.#endpoints;
    try {
      return await this.#clients.use(f);
    } catch (e) {
      throw new DotmeshError('UNAVAILABLE', `etcd at ${endpoints.join(',')}: cannot ${what}: ${(e as Error).message}`, {
        hint: 'check that a majority of the etcd members run and reach each other',
        cause: e,
      });
    }
  }
}

function clientFor(o: EtcdMembersOptions): Etcd3 {
  if (o.endpoints.length === 0) throw new DotmeshError('INVALID_ARGUMENT', 'etcd membership calls need at least one endpoint');
  const timeout = o.requestTimeoutMs ?? 10_000;
  return new Etcd3({
    hosts: [...o.endpoints],
    ...etcdCredentials(o),
    defaultCallOptions: () => ({ deadline: Date.now() + timeout }),
  });
}

/** The client URLs of the voting members (learners answer no linearizable read): what a store uses. */
export function votingClientUrls(members: readonly EtcdMember[]): string[] {
  return [...new Set(members.filter((m) => !m.learner).flatMap((m) => m.clientUrls))];
}

function toMember(m: { ID: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner?: boolean }): EtcdMember {
  return {
    id: String(m.ID),
    name: m.name,
    peerUrls: [...m.peerURLs],
    clientUrls: [...m.clientURLs],
    learner: m.isLearner === true,
  };
}
