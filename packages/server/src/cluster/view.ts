import { type CommitOrigin, DotmeshError, MASTER_BRANCH } from '@dotmesh/core';
import type { Store, WatchEvent, Watcher } from '@dotmesh/store';
import type { Logger } from '../log.ts';
import type { MasterNodes } from './master-nodes.ts';
import {
  type AddressRecord,
  type BranchStateRecord,
  type CloneRecord,
  type ContainersRecord,
  type DirtyRecord,
  type DurabilityRecord,
  type HeldCommitRecord,
  KEYS,
  type PinnedRecord,
  type PoolRecord,
  PREFIX,
  type PublicationsRecord,
  parseValue,
  type RegistryRecord,
} from './store-keys.ts';

/** A dot as the cluster knows it (registry record). */
export interface ClusterDot {
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  readonly ownerId: string;
  readonly collaboratorIds: readonly string[];
  readonly forkParentId: string;
  readonly forkParentSnapshotId: string;
}

/** A branch as the cluster knows it (the master branch from the registry, others from clone records). */
export interface ClusterBranch {
  readonly fsId: string;
  readonly dotId: string;
  readonly name: string;
  readonly origin: CommitOrigin | null;
}

/** A live node (`servers/addresses/<id>`, bound to its lease). */
export interface ClusterNode {
  readonly id: string;
  readonly addresses: readonly string[];
  /** Where its node-to-node (mutual TLS) endpoint listens; 0: none (a single node). */
  readonly clusterPort: number;
}

/** A commit some node holds, as it advertises it. */
export interface HeldCommit {
  readonly parent: CommitOrigin | null;
  readonly metadata: Readonly<Record<string, string>>;
}

export type ViewChange =
  | { readonly kind: 'master'; readonly fsId: string }
  | { readonly kind: 'deleted'; readonly fsId: string }
  | { readonly kind: 'deleted-commit'; readonly fsId: string; readonly commitId: string }
  | { readonly kind: 'node'; readonly nodeId: string };

/**
 * Every node's picture of the cluster-wide facts, kept by one watch on the store: dots by
 * name, their branches, each branch's master node (fed into the MasterNodes), tombstones, the
 * live nodes and each node's copy of each branch (its head and commit count). Any node answers
 * name lookups and lists from it; calls that need a branch's data go to its master.
 *
 * Consistency: the view follows the store in revision order, a moment behind it. Everything a
 * mutation relies on is compared in its store transaction, never taken from the view alone.
 */
export class ClusterView {
  readonly #store: Store;
  readonly #masterNodes: MasterNodes;
  readonly #logger: Logger;
  readonly #dots = new Map<string, ClusterDot>();
  readonly #byName = new Map<string, string>();
  readonly #branches = new Map<string, ClusterBranch>();
  readonly #dotBranches = new Map<string, Map<string, string>>();
  readonly #deleted = new Set<string>();
  readonly #nodes = new Map<string, ClusterNode>();
  readonly #states = new Map<string, Map<string, BranchStateRecord>>();
  readonly #listeners = new Set<(change: ViewChange) => void>();
  readonly #dirty = new Map<string, DirtyRecord>();
  readonly #containers = new Map<string, ContainersRecord>();
  /** nodeId → fsId → commitId → its history parent and metadata: the commits each node holds. */
  readonly #held = new Map<string, Map<string, Map<string, HeldCommit>>>();
  /** `<fsId>@<commitId>` of every commit deleted with DeleteCommit. */
  readonly #deletedCommits = new Set<string>();
  readonly #publications = new Map<string, PublicationsRecord & { readonly revision: number }>();
  readonly #pools = new Map<string, PoolRecord>();
  readonly #durability = new Map<string, DurabilityRecord & { readonly revision: number }>();
  readonly #pinned = new Map<string, PinnedRecord & { readonly revision: number }>();
  readonly #waiters = new Set<{ rev: number; resolve: () => void }>();
  #watcher: Watcher | undefined;
  #revision = 0;
  #closed = false;

  constructor(store: Store, masterNodes: MasterNodes, logger: Logger) {
    this.#store = store;
    this.#masterNodes = masterNodes;
    this.#logger = logger;
  }

  /** Reads everything once, then follows every change. */
  async start(): Promise<void> {
    await this.#load();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#watcher?.cancel();
  }

  /** The store revision the view reflects. */
  get revision(): number {
    return this.#revision;
  }

  onChange(listener: (change: ViewChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves once the view has seen the store's revision `rev` (a write of this node's, so that
   * a read right after it sees it too); UNAVAILABLE after `timeoutMs`.
   */
  caughtUp(rev: number, timeoutMs = 10_000): Promise<void> {
    if (this.#revision >= rev) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        rev,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new DotmeshError('UNAVAILABLE', `the cluster view is behind the store (at ${this.#revision}, wanted ${rev})`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /**
   * Resolves once the view has seen every write the store holds now: after a call another node
   * ran (a forwarded mutation), this node's reads then see what it wrote.
   */
  async caughtUpWithStore(timeoutMs = 10_000): Promise<void> {
    await this.caughtUp(await this.#store.revision(), timeoutMs);
  }

  // ── reads ────────────────────────────────────────────────────────────────────────────

  dotByName(namespace: string, name: string): ClusterDot | undefined {
    const id = this.#byName.get(`${namespace}/${name}`);
    return id === undefined ? undefined : this.#dots.get(id);
  }

  dot(dotId: string): ClusterDot | undefined {
    return this.#dots.get(dotId);
  }

  dots(): ClusterDot[] {
    return [...this.#dots.values()];
  }

  branch(fsId: string): ClusterBranch | undefined {
    return this.#branches.get(fsId);
  }

  /** Branch name → fsId of a dot (master included). */
  branchesOf(dotId: string): ReadonlyMap<string, string> {
    return this.#dotBranches.get(dotId) ?? new Map();
  }

  isDeleted(fsId: string): boolean {
    return this.#deleted.has(fsId);
  }

  nodes(): ClusterNode[] {
    return [...this.#nodes.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  node(nodeId: string): ClusterNode | undefined {
    return this.#nodes.get(nodeId);
  }

  /** The size and uncommitted bytes a branch's master node last advertised. */
  dirty(fsId: string): DirtyRecord | undefined {
    return this.#dirty.get(fsId);
  }

  /** The containers a branch's master node last advertised as using it. */
  containersOf(fsId: string): ReadonlyArray<{ readonly Name: string; readonly Id: string }> {
    return this.#containers.get(fsId)?.containers ?? [];
  }

  /** Whether commit `ref` was deleted (DeleteCommit): it is listed nowhere any more. */
  isCommitDeleted(ref: CommitOrigin): boolean {
    return this.#deletedCommits.has(`${ref.fsId}@${ref.commitId}`);
  }

  /** The uses of a branch (attachments, mounts) and the store revision of their record. */
  publicationsOf(fsId: string): (PublicationsRecord & { readonly revision: number }) | undefined {
    return this.#publications.get(fsId);
  }

  /** Every branch's uses, as last seen (one record per branch that has any). */
  allPublications(): Iterable<PublicationsRecord & { readonly revision: number }> {
    return this.#publications.values();
  }

  /** The durability set on a dot and its branches, and the store revision of that record. */
  durabilityOf(dotId: string): (DurabilityRecord & { readonly revision: number }) | undefined {
    return this.#durability.get(dotId);
  }

  /** What is pinned of a dot (the dot, some branches) and the store revision of that record. */
  pinnedOf(dotId: string): (PinnedRecord & { readonly revision: number }) | undefined {
    return this.#pinned.get(dotId);
  }

  /** The pool space each live node last advertised. */
  pools(): ReadonlyMap<string, PoolRecord> {
    return this.#pools;
  }

  /**
   * Every commit a node holds, once each (the first node's advertisement wins), with the
   * branch volume that holds it; deleted commits included (see isCommitDeleted).
   */
  *heldCommits(): Generator<{ readonly ref: CommitOrigin; readonly commit: HeldCommit }> {
    const seen = new Set<string>();
    for (const byFs of this.#held.values()) {
      for (const [fsId, commits] of byFs) {
        for (const [commitId, commit] of commits) {
          const key = `${fsId}@${commitId}`;
          if (seen.has(key)) continue;
          seen.add(key);
          yield { ref: { fsId, commitId }, commit };
        }
      }
    }
  }

  /** Whether `nodeId` advertises holding commit `ref`. */
  holds(nodeId: string, ref: CommitOrigin): boolean {
    return this.#held.get(nodeId)?.get(ref.fsId)?.has(ref.commitId) ?? false;
  }

  /**
   * The history ending at `head` as `nodeId` holds it (oldest first), following the parents
   * it advertised across branches; stops where its commits end.
   */
  historyOn(nodeId: string, head: CommitOrigin | null): CommitOrigin[] {
    const out: CommitOrigin[] = [];
    const seen = new Set<string>();
    let ref = head;
    while (ref && !seen.has(`${ref.fsId}@${ref.commitId}`)) {
      seen.add(`${ref.fsId}@${ref.commitId}`);
      const commits = this.#held.get(nodeId)?.get(ref.fsId);
      if (!commits?.has(ref.commitId)) break;
      out.push(ref);
      ref = commits.get(ref.commitId)?.parent ?? null;
    }
    return out.reverse();
  }

  /** Each node's copy of a branch (nodeId → its state record). */
  copiesOf(fsId: string): ReadonlyMap<string, BranchStateRecord> {
    return this.#states.get(fsId) ?? new Map();
  }

  // ── keeping up with the store ──────────────────────────────────────────────────────────

  async #load(): Promise<void> {
    const { kvs, revision } = await this.#store.range(PREFIX);
    this.#clear();
    this.#masterNodes.clear();
    for (const kv of kvs) this.#apply({ type: 'put', key: kv.key, value: kv.value, revision: kv.modRevision }, false);
    this.#advance(revision);
    this.#watcher = await this.#store.watch(
      PREFIX,
      {
        fromRevision: revision,
        onError: (err) => {
          if (this.#closed) return;
          // A watch whose history was compacted away (or lost for good): read everything again.
          this.#logger.warn({ err }, 'the cluster view lost its watch; reading the store again');
          void this.#load().catch((e: unknown) => this.#logger.error({ err: e }, 'could not read the store again'));
        },
      },
      (events) => {
        for (const e of events) this.#apply(e, true);
        const last = events.at(-1);
        if (last) this.#advance(last.revision);
      },
    );
  }

  #advance(revision: number): void {
    this.#revision = Math.max(this.#revision, revision);
    for (const w of [...this.#waiters]) {
      if (w.rev <= this.#revision) {
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  #clear(): void {
    this.#dirty.clear();
    this.#containers.clear();
    this.#held.clear();
    this.#deletedCommits.clear();
    this.#publications.clear();
    this.#pools.clear();
    this.#durability.clear();
    this.#pinned.clear();
    this.#dots.clear();
    this.#byName.clear();
    this.#branches.clear();
    this.#dotBranches.clear();
    this.#deleted.clear();
    this.#nodes.clear();
    this.#states.clear();
  }

  #apply(e: WatchEvent, notify: boolean): void {
    const key = e.key;
    try {
      if (key.startsWith(KEYS.registryPrefix)) this.#applyRegistry(key, e);
      else if (key.startsWith(KEYS.clonesPrefix)) this.#applyClone(key, e);
      else if (key.startsWith(KEYS.mastersPrefix)) {
        if (e.type === 'put') this.#masterNodes.applyPut(key, e.value ?? '', e.revision);
        else this.#masterNodes.applyDelete(key);
        if (notify) this.#emit({ kind: 'master', fsId: key.slice(KEYS.mastersPrefix.length) });
      } else if (key.startsWith(KEYS.deletedPrefix)) {
        const fsId = key.slice(KEYS.deletedPrefix.length);
        if (e.type === 'put') {
          this.#deleted.add(fsId);
          if (notify) this.#emit({ kind: 'deleted', fsId });
        } else this.#deleted.delete(fsId);
      } else if (key.startsWith(KEYS.deletedCommitsPrefix)) {
        const [fsId, commitId] = key.slice(KEYS.deletedCommitsPrefix.length).split('/');
        if (fsId === undefined || commitId === undefined) return;
        if (e.type === 'put') {
          this.#deletedCommits.add(`${fsId}@${commitId}`);
          if (notify) this.#emit({ kind: 'deleted-commit', fsId, commitId });
        } else this.#deletedCommits.delete(`${fsId}@${commitId}`);
      } else if (key.startsWith(KEYS.publicationsPrefix)) {
        const fsId = key.slice(KEYS.publicationsPrefix.length);
        const r = e.type === 'put' ? parseValue<PublicationsRecord>(e.value) : undefined;
        if (r && Array.isArray(r.uses) && typeof r.node_id === 'string')
          this.#publications.set(fsId, { ...r, revision: e.revision });
        else this.#publications.delete(fsId);
      } else if (key.startsWith(KEYS.durabilityPrefix)) {
        const dotId = key.slice(KEYS.durabilityPrefix.length);
        const r = e.type === 'put' ? parseValue<DurabilityRecord>(e.value) : undefined;
        if (r && typeof r.branches === 'object' && r.branches !== null)
          this.#durability.set(dotId, { ...r, revision: e.revision });
        else this.#durability.delete(dotId);
      } else if (key.startsWith(KEYS.pinnedPrefix)) {
        const dotId = key.slice(KEYS.pinnedPrefix.length);
        const r = e.type === 'put' ? parseValue<PinnedRecord>(e.value) : undefined;
        if (r && Array.isArray(r.branches)) this.#pinned.set(dotId, { ...r, dot: r.dot === true, revision: e.revision });
        else this.#pinned.delete(dotId);
      } else if (key.startsWith(KEYS.poolsPrefix)) {
        const nodeId = key.slice(KEYS.poolsPrefix.length);
        const r = e.type === 'put' ? parseValue<PoolRecord>(e.value) : undefined;
        if (r && typeof r.free_bytes === 'number') this.#pools.set(nodeId, r);
        else this.#pools.delete(nodeId);
      } else if (key.startsWith(KEYS.addressesPrefix)) this.#applyNode(key, e, notify);
      else if (key.startsWith(KEYS.statesPrefix)) this.#applyState(key, e);
      else if (key.startsWith(KEYS.commitsPrefix)) this.#applyHeld(key, e);
      else if (key.startsWith(KEYS.containersPrefix)) {
        const fsId = key.slice(KEYS.containersPrefix.length);
        const r = e.type === 'put' ? parseValue<ContainersRecord>(e.value) : undefined;
        if (r && Array.isArray(r.containers)) this.#containers.set(fsId, r);
        else this.#containers.delete(fsId);
      } else if (key.startsWith(KEYS.dirtyPrefix)) {
        const fsId = key.slice(KEYS.dirtyPrefix.length);
        const r = e.type === 'put' ? parseValue<DirtyRecord>(e.value) : undefined;
        if (r) this.#dirty.set(fsId, r);
        else this.#dirty.delete(fsId);
      }
    } catch (err) {
      // One bad value must not stop the view: it is logged and left out.
      this.#logger.warn({ err, key }, 'ignored a store value the cluster view cannot read');
    }
  }

  #applyRegistry(key: string, e: WatchEvent): void {
    const nameKey = key.slice(KEYS.registryPrefix.length);
    const old = this.#byName.get(nameKey);
    if (old !== undefined) {
      this.#byName.delete(nameKey);
      this.#dots.delete(old);
      const masterBranch = this.#branches.get(old);
      if (masterBranch?.name === MASTER_BRANCH) this.#branches.delete(old);
      this.#dotBranches.get(old)?.delete(MASTER_BRANCH);
    }
    if (e.type !== 'put') return;
    const r = parseValue<RegistryRecord>(e.value);
    if (!r || typeof r.Id !== 'string' || !r.Name) return;
    const dot: ClusterDot = {
      id: r.Id,
      namespace: r.Name.Namespace,
      name: r.Name.Name,
      ownerId: r.OwnerId,
      collaboratorIds: Array.isArray(r.CollaboratorIds) ? r.CollaboratorIds : [],
      forkParentId: r.ForkParentId ?? '',
      forkParentSnapshotId: r.ForkParentSnapshotId ?? '',
    };
    this.#dots.set(dot.id, dot);
    this.#byName.set(nameKey, dot.id);
    this.#branches.set(dot.id, { fsId: dot.id, dotId: dot.id, name: MASTER_BRANCH, origin: null });
    this.#branchMap(dot.id).set(MASTER_BRANCH, dot.id);
  }

  #applyClone(key: string, e: WatchEvent): void {
    const [dotId, branch] = key.slice(KEYS.clonesPrefix.length).split('/');
    if (dotId === undefined || branch === undefined) return;
    const map = this.#branchMap(dotId);
    const old = map.get(branch);
    if (old !== undefined) {
      map.delete(branch);
      if (this.#branches.get(old)?.name === branch) this.#branches.delete(old);
    }
    if (e.type !== 'put') return;
    const r = parseValue<CloneRecord>(e.value);
    if (!r || typeof r.FilesystemId !== 'string') return;
    const origin = r.Origin?.FilesystemId ? { fsId: r.Origin.FilesystemId, commitId: r.Origin.SnapshotId } : null;
    this.#branches.set(r.FilesystemId, { fsId: r.FilesystemId, dotId, name: branch, origin });
    map.set(branch, r.FilesystemId);
  }

  #applyNode(key: string, e: WatchEvent, notify: boolean): void {
    const nodeId = key.slice(KEYS.addressesPrefix.length);
    if (e.type !== 'put') {
      this.#nodes.delete(nodeId);
    } else {
      const r = parseValue<AddressRecord & { ClusterPort?: number }>(e.value);
      if (!r) return;
      this.#nodes.set(nodeId, {
        id: nodeId,
        addresses: Array.isArray(r.Addresses) ? r.Addresses : [],
        clusterPort: typeof r.ClusterPort === 'number' ? r.ClusterPort : 0,
      });
    }
    if (notify) this.#emit({ kind: 'node', nodeId });
  }

  #applyState(key: string, e: WatchEvent): void {
    const [nodeId, fsId] = key.slice(KEYS.statesPrefix.length).split('/');
    if (nodeId === undefined || fsId === undefined) return;
    let byNode = this.#states.get(fsId);
    if (e.type !== 'put') {
      byNode?.delete(nodeId);
      if (byNode?.size === 0) this.#states.delete(fsId);
      return;
    }
    const r = parseValue<BranchStateRecord>(e.value);
    if (!r) return;
    if (!byNode) {
      byNode = new Map();
      this.#states.set(fsId, byNode);
    }
    byNode.set(nodeId, r);
  }

  #applyHeld(key: string, e: WatchEvent): void {
    const [nodeId, fsId, commitId] = key.slice(KEYS.commitsPrefix.length).split('/');
    if (nodeId === undefined || fsId === undefined || commitId === undefined) return;
    let byFs = this.#held.get(nodeId);
    if (e.type !== 'put') {
      byFs?.get(fsId)?.delete(commitId);
      return;
    }
    const r = parseValue<HeldCommitRecord>(e.value);
    if (!byFs) {
      byFs = new Map();
      this.#held.set(nodeId, byFs);
    }
    let commits = byFs.get(fsId);
    if (!commits) {
      commits = new Map();
      byFs.set(fsId, commits);
    }
    commits.set(commitId, { parent: r?.Parent ?? null, metadata: r?.Metadata ?? {} });
  }

  #branchMap(dotId: string): Map<string, string> {
    let m = this.#dotBranches.get(dotId);
    if (!m) {
      m = new Map();
      this.#dotBranches.set(dotId, m);
    }
    return m;
  }

  #emit(change: ViewChange): void {
    for (const l of this.#listeners) {
      try {
        l(change);
      } catch (err) {
        this.#logger.error({ err, change }, 'a cluster view listener failed');
      }
    }
  }
}
