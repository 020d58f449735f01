import type { Store } from '@dotmesh/store';
import { updateDotRecord } from './dot-record.ts';
import { KEYS, type PinnedRecord } from './store-keys.ts';
import type { ClusterView } from './view.ts';

/** Where a branch's pin comes from: set on the branch, on its dot, or nowhere (not pinned). */
export type PinSource = 'branch' | 'dot' | '';

/** Whether branch `fsId` is pinned by `record` (its dot's), and by what. */
export function pinSource(record: Pick<PinnedRecord, 'dot' | 'branches'> | undefined, fsId: string): PinSource {
  if (record?.branches.includes(fsId)) return 'branch';
  if (record?.dot === true) return 'dot';
  return '';
}

/**
 * The record after pinning (`pinned` true) or unpinning the dot (`fsId` null) or one branch.
 * undefined: nothing left pinned (the key goes).
 */
export function withPinned(
  record: PinnedRecord | undefined,
  dotId: string,
  fsId: string | null,
  pinned: boolean,
): PinnedRecord | undefined {
  let dot = record?.dot === true;
  let branches = (record?.branches ?? []).filter((b) => typeof b === 'string');
  if (fsId === null) dot = pinned;
  else if (pinned) branches = branches.includes(fsId) ? branches : [...branches, fsId];
  else branches = branches.filter((b) => b !== fsId);
  if (!dot && branches.length === 0) return undefined;
  return { dot_id: dotId, dot, branches };
}

/**
 * Pinned branches, cluster-wide: a pinned branch stays with its master node when that node is
 * gone (no automatic failover, cluster/failover.ts); an admin moves it by hand (dm dot
 * smash-branch-master, dm cluster remove-node --force). One record per dot in the store
 * (`filesystems/pinned/<dotId>`, changed by compare-and-swap), read from every node's view.
 */
export class PinnedBranches {
  readonly #store: Store;
  readonly #view: ClusterView;

  constructor(store: Store, view: ClusterView) {
    this.#store = store;
    this.#view = view;
  }

  /** Why branch `fsId` of dot `dotId` is pinned ('' when it is not), as this node's view last saw it. */
  of(dotId: string, fsId: string): PinSource {
    return pinSource(this.#view.pinnedOf(dotId), fsId);
  }

  /** Pins or unpins dot `dotId` (`fsId` null: the dot's own pin, which all its branches follow) or one branch. */
  async set(dotId: string, fsId: string | null, pinned: boolean): Promise<void> {
    await updateDotRecord<PinnedRecord>(this.#store, this.#view, { key: KEYS.pinned(dotId), dotId, what: 'pin' }, (stored) =>
      withPinned(stored, dotId, fsId, pinned),
    );
  }
}
