import { DotmeshError } from '@dotmesh/core';
import type { Compare, Store } from '@dotmesh/store';
import { absent } from '../dots/mutation/store-writes.ts';
import type { MasterNodes } from './master-nodes.ts';
import { type BranchUse, KEYS, type PublicationsRecord, parseValue } from './store-keys.ts';
import type { ClusterView } from './view.ts';

/** Compare-and-swap rounds before a contended record gives up. */
const CAS_ATTEMPTS = 20;

/**
 * The uses of branches by things outside Dotmesh that the server cannot stop (Kubernetes
 * attachments and mounts, through the CSI driver), kept in the store (`filesystems/publications/
 * <fsId>`, one record per branch, changed by compare-and-swap) so that every node sees them and
 * they outlive a restart. A branch in use is not handed to another node, rolled back or deleted
 * (IN_USE); all the uses of a branch are on one node.
 *
 * A lost node's mounts are void once Kubernetes detached the volume from it: when the node is
 * gone (its lease expired), the branch failed over elsewhere and no attachment to it is left
 * (the non-graceful shutdown's forced detach, ControllerUnpublishVolume → DetachBranch), its
 * kubelet will never unmount them, and its copy is a fenced replica that takes no writes. An
 * attachment to another node then replaces them (see `add`); until then they block as any use.
 * FlexVolume mounts have no attachment: theirs give way once the node is gone and the branch
 * failed over.
 */
export class BranchPublications {
  readonly #store: Store;
  readonly #view: ClusterView;
  readonly #masterNodes: Pick<MasterNodes, 'get'>;

  constructor(store: Store, view: ClusterView, masterNodes: Pick<MasterNodes, 'get'>) {
    this.#store = store;
    this.#view = view;
    this.#masterNodes = masterNodes;
  }

  /** The uses of a branch as this node's view last saw them. */
  of(fsId: string): PublicationsRecord | undefined {
    const r = this.#view.publicationsOf(fsId);
    return r && r.uses.length > 0 ? r : undefined;
  }

  /** Every use recorded on `node`, of any branch, as this node's view last saw them. */
  onNode(node: string): Array<{ readonly fsId: string; readonly use: BranchUse }> {
    const found: Array<{ fsId: string; use: BranchUse }> = [];
    for (const r of this.#view.allPublications()) {
      if (r.node_id === node) for (const use of r.uses) found.push({ fsId: r.filesystem_id, use });
    }
    return found;
  }

  /**
   * The record as the store holds it now, and the compare that fails a transaction if it
   * changes meanwhile (a mutation that relies on the branch being unused fences on it).
   */
  async read(fsId: string): Promise<{ record: PublicationsRecord | undefined; fence: Compare }> {
    const kv = await this.#store.get(KEYS.publications(fsId));
    const record = parseValue<PublicationsRecord>(kv?.value);
    return {
      record: record && Array.isArray(record.uses) && record.uses.length > 0 ? record : undefined,
      fence: kv
        ? { key: KEYS.publications(fsId), target: 'modRevision', op: '==', value: kv.modRevision }
        : absent(KEYS.publications(fsId)),
    };
  }

  /**
   * Adds a use of `fsId` on `node` (the same use again changes nothing). Refused with IN_USE
   * while the branch is in use on another node (unless that node's uses are void: see the
   * class), and with CONFLICT when the same use exists with another read-only flag. True when
   * this call added it.
   */
  async add(fsId: string, node: string, use: Omit<BranchUse, 'at'>, what: string): Promise<boolean> {
    let added = false;
    await this.#update(fsId, (current) => {
      added = false;
      let record = current;
      if (record && record.node_id !== node) {
        if (!this.#voidOnLostNode(fsId, record)) throw publishedElsewhere(what, record);
        record = undefined; // replaced, by compare-and-swap on the record as read
      }
      const uses = record?.uses ?? [];
      const same = uses.find((u) => sameUse(u, use));
      if (same) {
        if (same.read_only !== use.read_only) {
          throw new DotmeshError(
            'CONFLICT',
            `${what}: ${use.volume} is ${use.kind === 'attach' ? 'attached' : `mounted at ${use.target}`} ${same.read_only ? 'read-only' : 'read-write'} already`,
            { hint: 'unpublish it first', data: { volume: use.volume, readOnly: same.read_only } },
          );
        }
        return undefined;
      }
      added = true;
      return { filesystem_id: fsId, node_id: node, uses: [...uses, { ...use, at: new Date().toISOString() }] };
    });
    return added;
  }

  /**
   * True when `record`'s node is gone (no address key: its lease expired), no longer masters
   * the branch (failover moved it) and holds no attachment of it (Kubernetes detached it): its
   * mounts can neither be unmounted by their kubelet nor written through.
   */
  #voidOnLostNode(fsId: string, record: PublicationsRecord): boolean {
    if (this.#view.node(record.node_id)) return false;
    const master = this.#masterNodes.get(fsId)?.nodeId;
    if (master === undefined || master === record.node_id) return false;
    return !record.uses.some((u) => u.kind === 'attach');
  }

  /** Removes the uses `match` selects; the record goes with its last use. Idempotent. */
  async remove(fsId: string, match: (use: BranchUse, node: string) => boolean): Promise<number> {
    let removed = 0;
    await this.#update(fsId, (record) => {
      if (!record) return undefined;
      const kept = record.uses.filter((u) => !match(u, record.node_id));
      removed = record.uses.length - kept.length;
      if (removed === 0) return undefined;
      return { ...record, uses: kept };
    });
    return removed;
  }

  /** One compare-and-swap loop; `change` returns the new record, or undefined for no change. */
  async #update(fsId: string, change: (record: PublicationsRecord | undefined) => PublicationsRecord | undefined): Promise<void> {
    const key = KEYS.publications(fsId);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { record, fence } = await this.read(fsId);
      const next = change(record);
      if (next === undefined) return;
      const op =
        next.uses.length === 0 ? { type: 'delete' as const, key } : { type: 'put' as const, key, value: JSON.stringify(next) };
      const result = await this.#store.txn({ compare: [fence], success: [op] });
      if (result.succeeded) {
        await this.#view.caughtUp(result.revision);
        return;
      }
    }
    throw new DotmeshError('UNAVAILABLE', `the uses of branch ${fsId} kept changing: gave up after ${CAS_ATTEMPTS} attempts`, {
      hint: 'run it again',
    });
  }
}

function sameUse(a: Pick<BranchUse, 'kind' | 'volume' | 'target'>, b: Pick<BranchUse, 'kind' | 'volume' | 'target'>): boolean {
  return a.kind === b.kind && a.volume === b.volume && a.target === b.target;
}

function publishedElsewhere(what: string, record: PublicationsRecord): DotmeshError {
  return new DotmeshError('IN_USE', `${what}: it is in use on node ${record.node_id} (${describeUses(record.uses)})`, {
    hint: 'unpublish it there first',
    data: { node: record.node_id, uses: record.uses.map((u) => ({ kind: u.kind, volume: u.volume, target: u.target })) },
  });
}

/** "attached as <vol>, mounted at <path>, …" for messages. */
export function describeUses(uses: readonly BranchUse[]): string {
  const parts = uses.map((u) => (u.kind === 'attach' ? `attached as ${u.volume}` : `mounted at ${u.target}`));
  return parts.length > 5 ? `${parts.slice(0, 5).join(', ')}, …` : parts.join(', ');
}

/**
 * IN_USE when anything outside Dotmesh uses the branch (a Kubernetes attachment or mount),
 * for operations that change or move its data: `what` is the refused operation.
 */
export function refuseIfPublished(publications: Pick<BranchPublications, 'of'>, fsId: string, what: string): void {
  const record = publications.of(fsId);
  if (!record) return;
  throw new DotmeshError('IN_USE', `${what}: the branch is in use on node ${record.node_id} (${describeUses(record.uses)})`, {
    hint: 'delete the pods using it (or unpublish it) first',
    data: {
      node: record.node_id,
      uses: record.uses.map((u) => ({ kind: u.kind, volume: u.volume, target: u.target })),
    },
  });
}
