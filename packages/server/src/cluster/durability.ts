import type { Store } from '@dotmesh/store';
import { updateDotRecord } from './dot-record.ts';
import { type Durability, type DurabilityRecord, KEYS } from './store-keys.ts';
import type { ClusterView } from './view.ts';

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
    await updateDotRecord<DurabilityRecord>(
      this.#store,
      this.#view,
      { key: KEYS.durability(dotId), dotId, what: 'durability' },
      (stored) => withDurability(stored, dotId, fsId, durability),
    );
  }
}
