import { DotmeshError } from '@dotmesh/core';
import type { Store, TxnOp } from '@dotmesh/store';
import { KEYS, type MasterRecord, parseValue } from './store-keys.ts';

/** Who masters a branch, and the store revision of that fact (the fencing token). */
export interface Mastership {
  readonly nodeId: string;
  /** modRevision of `filesystems/masters/<fsId>`: a mutation's store write compares it. */
  readonly revision: number;
}

/**
 * The master node of every branch, as the cluster store says (`filesystems/masters/<fsId>`).
 * Filled from the store at start and kept current by the writes that change it (this node's
 * mutations) and, on a cluster, by the store watch. A master key is created with its branch,
 * deleted with it, and otherwise moves only by compare-and-swap.
 */
export class MasterNodes {
  readonly #nodeId: string;
  readonly #masterNodes = new Map<string, Mastership>();

  constructor(nodeId: string) {
    this.#nodeId = nodeId;
  }

  get nodeId(): string {
    return this.#nodeId;
  }

  clear(): void {
    this.#masterNodes.clear();
  }

  async load(store: Store): Promise<void> {
    const { kvs } = await store.range(KEYS.mastersPrefix);
    this.#masterNodes.clear();
    for (const kv of kvs) this.applyPut(kv.key, kv.value, kv.modRevision);
  }

  /** A put seen in the store (our own write or a watch event). */
  applyPut(key: string, value: string, revision: number): void {
    const fsId = key.slice(KEYS.mastersPrefix.length);
    const record = parseValue<MasterRecord>(value);
    if (!record || typeof record.node_id !== 'string') return;
    this.#masterNodes.set(fsId, { nodeId: record.node_id, revision });
  }

  applyDelete(key: string): void {
    this.#masterNodes.delete(key.slice(KEYS.mastersPrefix.length));
  }

  /** Applies the master keys a successful transaction of ours wrote at `revision`. */
  observe(ops: readonly TxnOp[], revision: number): void {
    for (const op of ops) {
      if (op.type === 'put' && op.key.startsWith(KEYS.mastersPrefix)) this.applyPut(op.key, op.value, revision);
      else if (op.type === 'delete' && op.key.startsWith(KEYS.mastersPrefix)) this.applyDelete(op.key);
    }
  }

  set(fsId: string, nodeId: string, revision: number): void {
    this.#masterNodes.set(fsId, { nodeId, revision });
  }

  delete(fsId: string): void {
    this.#masterNodes.delete(fsId);
  }

  get(fsId: string): Mastership | undefined {
    return this.#masterNodes.get(fsId);
  }

  isMine(fsId: string): boolean {
    return this.#masterNodes.get(fsId)?.nodeId === this.#nodeId;
  }

  /** Every branch with a master node: fsId → its mastership. */
  all(): ReadonlyMap<string, Mastership> {
    return this.#masterNodes;
  }

  /** Every branch this node masters. */
  mine(): string[] {
    return [...this.#masterNodes].filter(([, m]) => m.nodeId === this.#nodeId).map(([fsId]) => fsId);
  }

  /**
   * This node's mastership of `fsId`, or NOT_MASTER naming the branch's master node (data:
   * `{ fsId, masterNode }`, masterNode "" when the branch has none).
   */
  requireMine(fsId: string, what: string): Mastership {
    const m = this.#masterNodes.get(fsId);
    if (m?.nodeId === this.#nodeId) return m;
    throw new DotmeshError(
      'NOT_MASTER',
      m
        ? `cannot ${what}: node ${m.nodeId} masters branch ${fsId}, not this node (${this.#nodeId})`
        : `cannot ${what}: branch ${fsId} has no master node`,
      {
        hint: 'send the request to the master node, or move the branch here (dm mount)',
        data: { fsId, masterNode: m?.nodeId ?? '' },
      },
    );
  }
}
