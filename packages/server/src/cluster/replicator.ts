import { KeyedQueue } from '../concurrency/keyed-queue.ts';
import type { DotContext } from '../dots/context.ts';
import { sameRef } from '../transfer/receive-commit.ts';

export interface ReplicationSettings {
  /** false: no background replication (handoffs still send what they need, through sendNow). */
  readonly enabled: boolean;
  /** Every this often, every branch this node masters is checked against every live node. */
  readonly sweepMs: number;
  /** Transfers to other nodes running at once, at most. */
  readonly concurrency: number;
  /** After a failed transfer to a node, the next try waits this long, doubling per failure (at most MAX_BACKOFF_MS). */
  readonly backoffMs: number;
  /** A Commit on a `sync` branch waits this long at most for another node to hold it (cluster/sync-commit.ts). */
  readonly syncCommitTimeoutMs: number;
}

export const DEFAULT_REPLICATION: ReplicationSettings = {
  enabled: true,
  sweepMs: 30_000,
  concurrency: 2,
  backoffMs: 2000,
  syncCommitTimeoutMs: 30_000,
};

const MAX_BACKOFF_MS = 5 * 60_000;

export type ReplicatorContext = Pick<DotContext, 'index' | 'view' | 'masterNodes' | 'mutations' | 'logger' | 'nodeId'>;

export interface ReplicatorOptions {
  readonly ctx: ReplicatorContext;
  /** Makes node `to` hold every commit of branch `fsId`'s history (node-send.ts sendBranchToNode). */
  readonly send: (dotId: string, fsId: string, to: string) => Promise<void>;
  readonly settings: ReplicationSettings;
}

interface Pair {
  readonly fsId: string;
  readonly nodeId: string;
}

/**
 * Asynchronous replication: every commit of every branch this node masters reaches every other
 * live node, into its replica (an unmounted copy), in the background. Commits only: the
 * uncommitted data stays on the master. The transfer is the handoff's (sendBranchToNode):
 * incremental from the newest commit both hold; a replica holding commits the master dropped
 * (rollback) first moves them to a `<branch>-DIVERGED-<time>` branch of its own.
 *
 * When: after each mutation of a dot (DotEvents, so never inside a Commit's reply), when a node
 * joins or comes back or a branch's master key moves here (the cluster view), and on a
 * periodic sweep (`sweepMs`) that catches anything missed. A (branch, node) pair already up to
 * date by the view (the node advertises the master's head) costs no transfer.
 *
 * One transfer per (branch, node) at a time: a request while one runs waits for it and then
 * runs once, whatever the number of commits that arrived meanwhile (coalesced). At most
 * `concurrency` transfers run at once. A failed pair is tried again after a backoff that
 * doubles per failure. Deleted dots and branches are never sent: the pair is dropped when a
 * tombstone names them, and a replica refuses commits for a tombstoned id
 * (transfer/incoming.ts).
 *
 * A Commit on a `sync` branch awaits sendNow to the other live nodes (cluster/sync-commit.ts)
 * besides the background path; both share the per-pair queue.
 */
export class Replicator {
  readonly #o: ReplicatorOptions;
  /** Per `<fsId>/<nodeId>`: background transfers and sendNow, one at a time. */
  readonly #pairs = new KeyedQueue();
  readonly #waiting = new Map<string, Pair>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #failures = new Map<string, { readonly count: number; readonly retryAt: number }>();
  readonly #unsubscribe: Array<() => void> = [];
  #sweep: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(o: ReplicatorOptions) {
    this.#o = o;
  }

  /** Follows the mutations and the cluster view, and sweeps every `sweepMs` (from now). */
  start(): void {
    if (!this.#o.settings.enabled) return;
    const { ctx } = this.#o;
    this.#unsubscribe.push(
      ctx.mutations.events.onChanged((e) => {
        if (e.op === 'delete') return;
        const dot = ctx.index.dots.get(e.dotId);
        for (const fsId of dot?.branches.values() ?? []) if (ctx.masterNodes.isMine(fsId)) this.requestAll(fsId);
      }),
      ctx.view.onChange((change) => {
        if (change.kind === 'node' && ctx.view.node(change.nodeId)) {
          // A node that comes back is tried at once, whatever its earlier failures.
          for (const key of this.#failures.keys()) if (key.endsWith(`/${change.nodeId}`)) this.#failures.delete(key);
          for (const fsId of ctx.masterNodes.mine()) this.request(fsId, change.nodeId);
        } else if (change.kind === 'master' && ctx.masterNodes.isMine(change.fsId)) {
          this.requestAll(change.fsId);
        }
      }),
    );
    this.sweep();
    this.#sweep = setInterval(() => this.sweep(), this.#o.settings.sweepMs);
    this.#sweep.unref();
  }

  /**
   * Stops taking work and waits for the transfers under way, at most `timeoutMs` (one still
   * running is cut with the server; the receiving node drops what did not arrive whole).
   */
  async stop(timeoutMs = 5000): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#sweep);
    clearTimeout(this.#retry);
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#waiting.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running.values()]),
      new Promise((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** Every branch this node masters, to every other live node. */
  sweep(): void {
    for (const fsId of this.#o.ctx.masterNodes.mine()) this.requestAll(fsId);
  }

  /** Branch `fsId` to every other live node. */
  requestAll(fsId: string): void {
    for (const node of this.#o.ctx.view.nodes()) {
      if (node.id !== this.#o.ctx.nodeId && node.clusterPort !== 0) this.request(fsId, node.id);
    }
  }

  /** Branch `fsId` to node `nodeId`, in the background (coalesced with a request already waiting). */
  request(fsId: string, nodeId: string): void {
    if (this.#stopped || nodeId === this.#o.ctx.nodeId) return;
    const key = pairKey(fsId, nodeId);
    if (!this.#waiting.has(key)) this.#waiting.set(key, { fsId, nodeId });
    this.#pump();
  }

  /**
   * Sends branch `fsId` to node `to` now, after any transfer of that pair under way (a handoff's
   * send: never two transfers of one branch into one node at once). Not bounded by `concurrency`.
   */
  sendNow(dotId: string, fsId: string, to: string): Promise<void> {
    return this.#pairs.run(pairKey(fsId, to), () => this.#o.send(dotId, fsId, to));
  }

  /** Counts for DumpInternalState (`replication.*`). */
  state(): Record<string, string> {
    return {
      'replication.enabled': String(this.#o.settings.enabled),
      'replication.waiting': String(this.#waiting.size),
      'replication.running': String(this.#running.size),
      'replication.failing': String(this.#failures.size),
    };
  }

  /** Starts waiting pairs while fewer than `concurrency` run; a pair in backoff waits its turn. */
  #pump(): void {
    if (this.#stopped) return;
    const now = Date.now();
    let nextRetry = Number.POSITIVE_INFINITY;
    for (const [key, pair] of this.#waiting) {
      if (this.#running.size >= this.#o.settings.concurrency) return;
      if (this.#running.has(key)) continue;
      const retryAt = this.#failures.get(key)?.retryAt ?? 0;
      if (retryAt > now) {
        nextRetry = Math.min(nextRetry, retryAt);
        continue;
      }
      this.#waiting.delete(key);
      const run = this.#pairs
        .run(key, () => this.#replicate(key, pair))
        .finally(() => {
          this.#running.delete(key);
          this.#pump();
        });
      this.#running.set(key, run);
    }
    if (Number.isFinite(nextRetry)) {
      clearTimeout(this.#retry);
      this.#retry = setTimeout(() => this.#pump(), Math.max(0, nextRetry - now));
      this.#retry.unref();
    }
  }

  async #replicate(key: string, { fsId, nodeId }: Pair): Promise<void> {
    const { ctx } = this.#o;
    const branch = ctx.index.branches.get(fsId);
    const dotId = branch?.label.dotId;
    // Not ours to send (moved, deleted), or the node is gone: dropped. A master key moving here,
    // a node coming back and the sweep request it again.
    if (this.#stopped || !branch || dotId === undefined || !ctx.masterNodes.isMine(fsId)) return this.#settled(key);
    if (ctx.view.isDeleted(fsId) || ctx.view.isDeleted(dotId)) return this.#settled(key);
    const node = ctx.view.node(nodeId);
    if (!node || node.clusterPort === 0) return this.#settled(key);
    const copy = ctx.view.copiesOf(fsId).get(nodeId);
    if (copy && sameRef(copy.head, ctx.index.head(fsId))) return this.#settled(key);
    try {
      await this.#o.send(dotId, fsId, nodeId);
      this.#settled(key);
      ctx.logger.debug({ fsId, node: nodeId }, 'replicated a branch to another node');
    } catch (err) {
      const count = (this.#failures.get(key)?.count ?? 0) + 1;
      const delay = Math.min(this.#o.settings.backoffMs * 2 ** (count - 1), MAX_BACKOFF_MS);
      this.#failures.set(key, { count, retryAt: Date.now() + delay });
      ctx.logger.warn(
        { err, fsId, node: nodeId, failures: count, retryInMs: delay },
        'could not replicate a branch to another node',
      );
      if (!this.#stopped) this.#waiting.set(key, { fsId, nodeId });
    }
  }

  #settled(key: string): void {
    this.#failures.delete(key);
  }
}

function pairKey(fsId: string, nodeId: string): string {
  return `${fsId}/${nodeId}`;
}
