import type { Store, TxnOp } from '@dotmesh/store';
import type { DotIndex } from '../dots/dot-index.ts';
import type { SizeTracker } from '../dots/sizes.ts';
import type { Logger } from '../log.ts';
import type { MasterNodes } from './master-nodes.ts';
import type { NodeLease } from './node-lease.ts';
import { type DirtyRecord, KEYS } from './store-keys.ts';

/**
 * On a cluster of several nodes, the master of each branch advertises its size and uncommitted
 * bytes (`filesystems/dirty/<fsId>`, under its lease, the original's key) so that any node can
 * list them. Checked every `intervalMs`; a key is written only when its figures changed, and
 * removed when this node no longer masters the branch.
 */
export interface DirtyAdvertiserOptions {
  readonly store: Store;
  readonly lease: NodeLease;
  readonly sizes: SizeTracker;
  readonly masterNodes: MasterNodes;
  readonly index: DotIndex;
  readonly intervalMs: number;
  readonly logger: Logger;
}

export class DirtyAdvertiser {
  readonly #o: DirtyAdvertiserOptions;
  readonly #written = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(o: DirtyAdvertiserOptions) {
    this.#o = o;
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#running ??= this.tick()
        .catch((err: unknown) => this.#o.logger.warn({ err }, 'could not advertise branch sizes'))
        .finally(() => {
          this.#running = undefined;
        });
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One round: the figures of every branch this node masters and holds. */
  async tick(): Promise<void> {
    const { store, lease, sizes, masterNodes, index } = this.#o;
    const all = await sizes.fresh();
    const nodeId = masterNodes.nodeId;
    const ops: TxnOp[] = [];
    const mine = new Set(masterNodes.mine().filter((fsId) => index.branches.has(fsId)));
    for (const fsId of mine) {
      const s = all.get(fsId);
      const record: DirtyRecord = {
        filesystem_id: fsId,
        node_id: nodeId,
        dirty_bytes: s?.dirty ? Math.max(s.dirtyBytes, 1) : 0,
        size_bytes: s?.referencedBytes ?? 0,
      };
      const value = JSON.stringify(record);
      if (this.#written.get(fsId) === value) continue;
      ops.push({ type: 'put', key: KEYS.dirty(fsId), value, lease: lease.id });
      this.#written.set(fsId, value);
    }
    for (let i = 0; i < ops.length; i += 100) await store.txn({ compare: [], success: ops.slice(i, i + 100) });
    // A branch that moved away: its record goes, unless its new master wrote its own meanwhile.
    for (const [fsId, value] of [...this.#written]) {
      if (mine.has(fsId)) continue;
      this.#written.delete(fsId);
      await store.txn({
        compare: [{ key: KEYS.dirty(fsId), target: 'value', op: '==', value }],
        success: [{ type: 'delete', key: KEYS.dirty(fsId) }],
      });
    }
  }
}
