import type { Store, TxnOp } from '@dotmesh/store';
import { KeyedQueue } from '../concurrency/keyed-queue.ts';
import type { DotIndex } from './dot-index.ts';

/**
 * Mirrors the index into the cluster store under the original's key layout (§8 of the
 * original's facts), so other nodes and tools can read it. The pool stays authoritative:
 * the mirror is rewritten from the index at every start and after every mutation.
 */
export const PREFIX = 'dotmesh.io/';
const REGISTRY = `${PREFIX}registry/filesystems/`;
const CLONES = `${PREFIX}registry/clones/`;
const MASTERS = `${PREFIX}filesystems/masters/`;
const SNAPSHOTS = `${PREFIX}servers/snapshots/`;
/** Ops per store transaction, under etcd's default limit of 128. */
const TXN_OPS = 100;

export interface MirrorDiff {
  readonly added: string[];
  readonly removed: string[];
}

export class StoreMirror {
  readonly #store: Store;
  readonly #index: DotIndex;
  readonly #nodeId: string;
  readonly #queue = new KeyedQueue();
  /** Per dot, the keys and values its last successful write left in the store. */
  readonly #written = new Map<string, Map<string, string>>();

  constructor(store: Store, index: DotIndex, nodeId: string) {
    this.#store = store;
    this.#index = index;
    this.#nodeId = nodeId;
  }

  /** All key/values the index implies for one dot. */
  #dotEntries(dotId: string): Map<string, string> {
    const out = new Map<string, string>();
    const dot = this.#index.dots.get(dotId);
    if (!dot) return out;
    out.set(
      `${REGISTRY}${dot.info.namespace}/${dot.info.name}`,
      JSON.stringify({
        Id: dot.id,
        OwnerId: dot.info.ownerId,
        Name: { Namespace: dot.info.namespace, Name: dot.info.name },
        CollaboratorIds: dot.info.collaboratorIds,
      }),
    );
    for (const [branch, fsId] of dot.branches) {
      const b = this.#index.branches.get(fsId);
      if (!b) continue;
      if (branch !== 'master') {
        out.set(
          `${CLONES}${dot.id}/${branch}`,
          JSON.stringify({
            TopLevelFilesystemId: dot.id,
            FilesystemId: fsId,
            Name: branch,
            Origin: { FilesystemId: b.label.origin?.fsId ?? '', SnapshotId: b.label.origin?.commitId ?? '' },
          }),
        );
      }
      out.set(`${MASTERS}${fsId}`, JSON.stringify({ filesystem_id: fsId, node_id: this.#nodeId }));
      const hidden = new Set(b.label.hiddenCommits);
      out.set(
        `${SNAPSHOTS}${this.#nodeId}/${fsId}`,
        JSON.stringify({
          id: this.#nodeId,
          filesystem_id: fsId,
          snapshots: b.commits.filter((c) => !hidden.has(c.id)).map((c) => ({ Id: c.id, Metadata: c.meta.metadata })),
        }),
      );
    }
    return out;
  }

  #keysOwnedBy(dotId: string, namespace: string, name: string, fsIds: readonly string[]): string[] {
    return [
      `${REGISTRY}${namespace}/${name}`,
      ...fsIds.flatMap((fsId) => [`${MASTERS}${fsId}`, `${SNAPSHOTS}${this.#nodeId}/${fsId}`]),
      `${CLONES}${dotId}/`,
    ];
  }

  /**
   * Rewrites one dot's keys (after any mutation of it). Writes for one dot are serialised and
   * each reads the index when it runs, so the last write always carries the latest state.
   */
  syncDot(dotId: string): Promise<void> {
    return this.#queue.run(dotId, () => this.#syncDot(dotId));
  }

  async #syncDot(dotId: string): Promise<void> {
    const entries = this.#dotEntries(dotId);
    const dot = this.#index.dots.get(dotId);
    if (!dot) return;
    // Only what changed since this dot's last write is written (a commit: one key), and keys
    // the dot no longer implies are deleted. Without a record of the last write (cannot happen
    // after rebuild(), which records every dot), everything is written and stale clones found.
    let previous = this.#written.get(dotId);
    if (!previous) {
      const { kvs } = await this.#store.range(`${CLONES}${dotId}/`);
      previous = new Map(kvs.map((kv) => [kv.key, kv.value]));
    }
    const ops: TxnOp[] = [...previous.keys()].filter((k) => !entries.has(k)).map((key): TxnOp => ({ type: 'delete', key }));
    for (const [key, value] of entries) if (previous.get(key) !== value) ops.push({ type: 'put', key, value });
    this.#written.delete(dotId);
    await this.#apply(ops);
    this.#written.set(dotId, entries);
  }

  /** Removes a dot's keys (after a delete). */
  removeDot(dotId: string, namespace: string, name: string, fsIds: readonly string[]): Promise<void> {
    return this.#queue.run(dotId, () => this.#removeDot(dotId, namespace, name, fsIds));
  }

  async #removeDot(dotId: string, namespace: string, name: string, fsIds: readonly string[]): Promise<void> {
    this.#written.delete(dotId);
    const ops: TxnOp[] = this.#keysOwnedBy(dotId, namespace, name, fsIds).map((k) =>
      k.endsWith('/') ? { type: 'deletePrefix', prefix: k } : { type: 'delete', key: k },
    );
    await this.#apply(ops);
  }

  /**
   * Writes ops in transactions of at most TXN_OPS ops each: etcd refuses larger ones by default
   * (--max-txn-ops 128). The mirror needs no atomicity across them: the pool is authoritative
   * and the next write of the dot (or the next start) rewrites what a failure left behind.
   */
  async #apply(ops: readonly TxnOp[]): Promise<void> {
    for (let i = 0; i < ops.length; i += TXN_OPS) {
      await this.#store.txn({ compare: [], success: ops.slice(i, i + TXN_OPS) });
    }
  }

  /**
   * Replaces the whole mirror with what the index holds and reports what differed, so the
   * reconciler can log every adoption and drop.
   */
  async rebuild(): Promise<MirrorDiff> {
    const wanted = new Map<string, string>();
    for (const dotId of this.#index.dots.keys()) for (const [k, v] of this.#dotEntries(dotId)) wanted.set(k, v);
    const existing = new Map<string, string>();
    for (const prefix of [REGISTRY, CLONES, MASTERS, `${SNAPSHOTS}${this.#nodeId}/`]) {
      const { kvs } = await this.#store.range(prefix);
      for (const kv of kvs) existing.set(kv.key, kv.value);
    }
    const added = [...wanted.keys()].filter((k) => !existing.has(k));
    const removed = [...existing.keys()].filter((k) => !wanted.has(k));
    const ops: TxnOp[] = [
      ...removed.map((key): TxnOp => ({ type: 'delete', key })),
      ...[...wanted].filter(([k, v]) => existing.get(k) !== v).map(([key, value]): TxnOp => ({ type: 'put', key, value })),
    ];
    await this.#apply(ops);
    this.#written.clear();
    for (const dotId of this.#index.dots.keys()) this.#written.set(dotId, this.#dotEntries(dotId));
    return { added, removed };
  }
}
