import type { Store, TxnOp } from '@dotmesh/store';
import type { ContainerTracker } from '../dots/containers.ts';
import type { DotIndex } from '../dots/dot-index.ts';
import type { SizeTracker } from '../dots/sizes.ts';
import type { Logger } from '../log.ts';
import type { MasterNodes } from './master-nodes.ts';
import type { NodeLease } from './node-lease.ts';
import { type ContainersRecord, type DirtyRecord, KEYS, type PoolRecord } from './store-keys.ts';

/**
 * On a cluster of several nodes, the master of each branch advertises its size and uncommitted
 * bytes (`filesystems/dirty/<fsId>`) and the containers using it (`filesystems/containers/<fsId>`),
 * under its lease, the original's keys, so that any node can list them. Checked every
 * `intervalMs`; a key is written only when it changed and while the master key still names
 * this node (compared in the same transaction), and removed when this node no longer masters
 * the branch (deleting a dot removes them at once: deleteDotOps). It also advertises this node's pool space
 * (`servers/pools/<nodeId>`, in MiB steps), for Capacity on any node.
 */
export interface BranchAdvertiserOptions {
  readonly store: Store;
  readonly lease: NodeLease;
  readonly sizes: SizeTracker;
  readonly masterNodes: MasterNodes;
  readonly index: DotIndex;
  readonly containers: ContainerTracker;
  /** This node's pool space now. */
  readonly pool: () => Promise<{ readonly freeBytes: number; readonly totalBytes: number }>;
  readonly intervalMs: number;
  readonly logger: Logger;
}

export class BranchAdvertiser {
  readonly #o: BranchAdvertiserOptions;
  readonly #written = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(o: BranchAdvertiserOptions) {
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

  /** Queues a put of `key` unless it holds `value` already (as this node last wrote it). */
  #put(ops: TxnOp[], key: string, value: string, lease: string): void {
    if (this.#written.get(key) === value) return;
    ops.push({ type: 'put', key, value, lease });
    this.#written.set(key, value);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One round: the figures of every branch this node masters and holds. */
  async tick(): Promise<void> {
    const { store, lease, sizes, masterNodes, index } = this.#o;
    const all = await sizes.fresh();
    const using = await this.#o.containers.snapshot();
    const nodeId = masterNodes.nodeId;
    const mine = new Set(masterNodes.mine().filter((fsId) => index.branches.has(fsId)));
    for (const fsId of mine) {
      const mastership = masterNodes.get(fsId);
      if (!mastership) continue;
      const ops: TxnOp[] = [];
      const s = all.get(fsId);
      const record: DirtyRecord = {
        filesystem_id: fsId,
        node_id: nodeId,
        dirty_bytes: s?.dirty ? Math.max(s.dirtyBytes, 1) : 0,
        size_bytes: s?.referencedBytes ?? 0,
      };
      this.#put(ops, KEYS.dirty(fsId), JSON.stringify(record), lease.id);
      const containers: ContainersRecord = {
        filesystem_id: fsId,
        node_id: nodeId,
        containers: using(fsId).map((c) => ({ Name: c.Name, Id: c.Id })),
      };
      this.#put(ops, KEYS.containers(fsId), JSON.stringify(containers), lease.id);
      if (ops.length === 0) continue;
      // Only while this node still masters the branch: a delete or a move since the list was
      // taken has removed or changed the master key, and must not find these records back.
      const written = await store.txn({
        compare: [{ key: KEYS.master(fsId), target: 'modRevision', op: '==', value: mastership.revision }],
        success: ops,
      });
      if (!written.succeeded) for (const op of ops) if (op.type === 'put') this.#written.delete(op.key);
    }
    const pool = await this.#o.pool();
    const poolRecord: PoolRecord = {
      node_id: nodeId,
      free_bytes: roundMiB(pool.freeBytes),
      total_bytes: roundMiB(pool.totalBytes),
    };
    const poolOps: TxnOp[] = [];
    this.#put(poolOps, KEYS.pool(nodeId), JSON.stringify(poolRecord), lease.id);
    if (poolOps.length > 0) await store.txn({ compare: [], success: poolOps });
    // A branch that moved away: its records go, unless its new master wrote its own meanwhile.
    for (const [key, value] of [...this.#written]) {
      if (key.startsWith(KEYS.poolsPrefix)) continue;
      const fsId = key.slice(key.lastIndexOf('/') + 1);
      if (mine.has(fsId)) continue;
      this.#written.delete(key);
      await store.txn({ compare: [{ key, target: 'value', op: '==', value }], success: [{ type: 'delete', key }] });
    }
  }
}

function roundMiB(bytes: number): number {
  return Math.floor(bytes / 1048576) * 1048576;
}
