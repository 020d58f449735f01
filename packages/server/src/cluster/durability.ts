import { DotmeshError } from '@dotmesh/core';
import type { Store } from '@dotmesh/store';
import { absent } from '../dots/mutation/store-writes.ts';
import { type Durability, type DurabilityRecord, KEYS, parseValue } from './store-keys.ts';
import type { ClusterView } from './view.ts';

/** Compare-and-swap rounds before a contended record gives up. */
const CAS_ATTEMPTS = 20;

/** Where a branch's durability comes from: set on it, set on its dot, or the cluster's default. */
export type DurabilitySource = 'branch' | 'dot' | 'cluster';

export interface EffectiveDurability {
  readonly durability: Durability;
  readonly source: DurabilitySource;
}

export function isDurability(value: unknown): value is Durability {
  return value === 'sync' || value === 'async';
}

/**
 * A branch's durability: the one set on the branch, else the one set on its dot, else the
 * cluster's default — `sync` while another live node can hold a copy (`othersLive`), `async`
 * on a node alone or one that does not replicate (nothing could confirm a copy; a single node
 * always was async).
 */
export function effectiveDurability(
  record: Pick<DurabilityRecord, 'default' | 'branches'> | undefined,
  fsId: string,
  othersLive: boolean,
): EffectiveDurability {
  const onBranch = record?.branches[fsId];
  if (isDurability(onBranch)) return { durability: onBranch, source: 'branch' };
  if (isDurability(record?.default)) return { durability: record.default, source: 'dot' };
  return { durability: othersLive ? 'sync' : 'async', source: 'cluster' };
}

/**
 * The record after setting `durability` on the dot (`fsId` null) or on one branch; null
 * clears that setting (inherit again). undefined: nothing left set (the key goes).
 */
export function withDurability(
  record: DurabilityRecord | undefined,
  dotId: string,
  fsId: string | null,
  durability: Durability | null,
): DurabilityRecord | undefined {
  const branches: Record<string, Durability> = { ...(record?.branches ?? {}) };
  let dotDefault = record?.default;
  if (fsId === null) dotDefault = durability ?? undefined;
  else if (durability === null) delete branches[fsId];
  else branches[fsId] = durability;
  if (dotDefault === undefined && Object.keys(branches).length === 0) return undefined;
  return { dot_id: dotId, ...(dotDefault ? { default: dotDefault } : {}), branches };
}

/**
 * The durability settings of dots and branches, cluster-wide: one record per dot in the store
 * (`filesystems/durability/<dotId>`, changed by compare-and-swap), so every node — and a new
 * master after a handoff or failover — reads the same from its view.
 */
export class DurabilitySettings {
  readonly #store: Store;
  readonly #view: ClusterView;
  readonly #nodeId: string;
  readonly #replicating: boolean;

  /** `replicating`: this node sends commits to the others (a cluster with replication on). */
  constructor(store: Store, view: ClusterView, nodeId: string, replicating: boolean) {
    this.#store = store;
    this.#view = view;
    this.#nodeId = nodeId;
    this.#replicating = replicating;
  }

  /**
   * Whether the cluster's default is `sync` now: this node replicates and a live node other
   * than this one could hold a copy.
   */
  othersLive(): boolean {
    return this.#replicating && this.#view.nodes().some((n) => n.id !== this.#nodeId && n.clusterPort !== 0);
  }

  /** Branch `fsId` of dot `dotId`, as this node's view last saw the settings. */
  of(dotId: string, fsId: string): EffectiveDurability {
    return effectiveDurability(this.#view.durabilityOf(dotId), fsId, this.othersLive());
  }

  /** What is set on the dot itself (undefined: nothing, its branches follow the cluster). */
  dotSetting(dotId: string): Durability | undefined {
    return this.#view.durabilityOf(dotId)?.default;
  }

  /** Sets (or, with null, clears) the durability of dot `dotId` (`fsId` null) or of one of its branches. */
  async set(dotId: string, fsId: string | null, durability: Durability | null): Promise<void> {
    const key = KEYS.durability(dotId);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const kv = await this.#store.get(key);
      const next = withDurability(parseValue<DurabilityRecord>(kv?.value), dotId, fsId, durability);
      const fence = kv ? { key, target: 'modRevision' as const, op: '==' as const, value: kv.modRevision } : absent(key);
      if (!kv && next === undefined) return;
      const op =
        next === undefined ? { type: 'delete' as const, key } : { type: 'put' as const, key, value: JSON.stringify(next) };
      // A dot deleted meanwhile keeps no record: its tombstone fails the write.
      const result = await this.#store.txn({ compare: [fence, absent(KEYS.deleted(dotId))], success: [op] });
      if (result.succeeded) {
        await this.#view.caughtUp(result.revision);
        return;
      }
      if (this.#view.isDeleted(dotId)) {
        throw new DotmeshError('DOT_NOT_FOUND', `dot ${dotId} was deleted: it has no durability to set`, { data: { dotId } });
      }
    }
    throw new DotmeshError(
      'UNAVAILABLE',
      `the durability of dot ${dotId} kept changing: gave up after ${CAS_ATTEMPTS} attempts`,
      {
        hint: 'run it again',
      },
    );
  }
}
