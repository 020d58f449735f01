import { DotmeshError } from '@dotmesh/core';
import type { StorageDriver } from '@dotmesh/storage';
import type { DotIndex } from '../dots/dot-index.ts';
import type { Logger } from '../log.ts';
import type { MasterNodes } from './master-nodes.ts';
import type { NodeLease } from './node-lease.ts';

/** How often the fence compares the lease deadline with the clock. */
const POLL_MS = 200;
/** Fence at most this long before the lease deadline (less on a short TTL: see leadMsFor). */
const MAX_LEAD_MS = 1000;

/**
 * How long before the deadline the fence acts: MAX_LEAD_MS, or an eighth of the time from a
 * keep-alive's send to its deadline when that is shorter (a short test TTL), so that keep-alives
 * running late on a loaded host do not fence a node that is in contact.
 */
export function leadMsFor(lease: { readonly ttlSeconds: number; readonly marginMs: number }): number {
  return Math.min(MAX_LEAD_MS, Math.max(0, (lease.ttlSeconds * 1000 - lease.marginMs) / 8));
}

export interface FenceDeps {
  readonly driver: Pick<StorageDriver, 'setLiveReadOnly' | 'liveReadOnly'>;
  readonly index: DotIndex;
  readonly masterNodes: MasterNodes;
  readonly lease: Pick<NodeLease, 'remainingMs'>;
  readonly logger: Logger;
  readonly now: () => Date;
  /** Fence this long before the lease deadline (leadMsFor). */
  readonly leadMs: number;
}

/** What the fence does once the lease is back (server.ts gives the cluster view and standDown). */
export interface FenceRegain {
  /** Resolves once this node's view of the master keys has caught up with the store. */
  readonly caughtUp: () => Promise<void>;
  /**
   * Another node masters `fsId` now: its uncommitted data into a `stashing` commit, the copy a
   * replica (come-back.ts standDown); its commits the new master lacks reach a -DIVERGED- branch
   * when the new master's replication sends the branch here.
   */
  readonly lost: (fsId: string) => Promise<unknown>;
}

interface Fenced {
  readonly since: Date;
  readonly name: string;
}

/**
 * Never two writers. A node may act as a branch's master only until its lease deadline
 * (node-lease.ts): past it, etcd may have expired the lease and another node may master the
 * branch. So, a little before the deadline (`leadMs`), the fence makes the live data of every
 * branch this node holds as master (its pool label does not say replica) read-only in the pool
 * (btrfs: the live subvolume's `ro` property), whatever processes or containers have it open:
 * their writes fail with EROFS. Mutations of those branches are refused with the reason
 * (assertWritable, checked by the mutation path before anything else).
 *
 * When the lease is back (a keep-alive answered in time, or a new lease after this one was
 * found gone), once the view caught up with the store: a branch whose master key still names
 * this node is made writable again; one another node masters now is `lost` (come-back.ts).
 *
 * At start (atStart, before the API listens or mounts are handed out): a copy this node holds
 * as master while the store names another master is made read-only before anything else; a
 * copy left read-only by an earlier run whose master key names this node is made writable.
 *
 * The fence calls the driver directly, outside the mutation path: it must act by the deadline,
 * not after locks a long mutation holds, and it changes neither data, commits, labels nor the
 * store — only whether processes may write into the live data.
 */
export class BranchFence {
  readonly #deps: FenceDeps;
  readonly #fenced = new Map<string, Fenced>();
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  #regain: FenceRegain | undefined;

  constructor(deps: FenceDeps) {
    this.#deps = deps;
  }

  /** Watches the lease deadline every POLL_MS from now on. */
  start(regain: FenceRegain): void {
    this.#regain = regain;
    this.#timer = setInterval(() => void this.check(), POLL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** Whether `fsId` is fenced (read-only until this node is in contact with the store again). */
  isFenced(fsId: string): boolean {
    return this.#fenced.has(fsId);
  }

  /**
   * UNAVAILABLE when one of `fsIds` is fenced: the branch is read-only until this node reaches
   * the cluster store again and still masters it.
   */
  assertWritable(fsIds: readonly string[], what: string): void {
    for (const fsId of fsIds) {
      const f = this.#fenced.get(fsId);
      if (!f) continue;
      throw new DotmeshError(
        'UNAVAILABLE',
        `cannot ${what}: this node lost contact with the cluster store at ${f.since.toISOString()}: ${f.name} is read-only until it reaches the store again and still masters the branch`,
        {
          hint: 'check that etcd is reachable from this node; writes resume by themselves then (if another node took the branch over meanwhile, what this node held goes to a -DIVERGED- branch)',
          data: { fsId, fencedSince: f.since.toISOString() },
        },
      );
    }
  }

  /** `fence.<fsId>`: since when each fenced branch is read-only (DumpInternalState). */
  state(): Record<string, string> {
    return Object.fromEntries([...this.#fenced].map(([fsId, f]) => [`fence.${fsId}`, f.since.toISOString()]));
  }

  /**
   * Before the server serves anything: copies this node holds as master whose master key names
   * another node become read-only (standDown follows, through followMastership); copies an
   * earlier run left read-only whose master key names this node become writable.
   */
  async atStart(): Promise<void> {
    const { driver, masterNodes, logger } = this.#deps;
    for (const fsId of this.#heldAsMaster()) {
      const master = masterNodes.get(fsId)?.nodeId;
      if (master === undefined) continue;
      if (master !== masterNodes.nodeId) {
        await driver.setLiveReadOnly(fsId, true);
        logger.warn(
          { fsId, branch: this.#name(fsId), master },
          `node ${master} masters ${this.#name(fsId)} now: this node's copy is read-only; what it holds that ${master} lacks goes to a -DIVERGED- branch`,
        );
      } else if (await driver.liveReadOnly(fsId)) {
        await driver.setLiveReadOnly(fsId, false);
        logger.info({ fsId, branch: this.#name(fsId) }, `this node masters ${this.#name(fsId)}: writable again`);
      }
    }
  }

  /** One look at the deadline (the poll; tests call it). */
  async check(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      if (this.#deps.lease.remainingMs() <= this.#deps.leadMs) await this.#fenceAll();
      else if (this.#fenced.size > 0 && this.#regain) await this.#regained(this.#regain);
    } catch (err) {
      this.#deps.logger.error({ err }, 'the fence could not finish what it does when the lease is back; trying again');
    } finally {
      this.#busy = false;
    }
  }

  async #fenceAll(): Promise<void> {
    const { driver, logger, now } = this.#deps;
    for (const fsId of this.#heldAsMaster()) {
      if (this.#fenced.has(fsId)) continue;
      const since = now();
      const name = this.#name(fsId);
      try {
        await driver.setLiveReadOnly(fsId, true);
      } catch (err) {
        logger.error({ err, fsId, branch: name }, `could not make ${name} read-only; trying again`);
        continue;
      }
      this.#fenced.set(fsId, { since, name });
      logger.warn(
        { fsId, branch: name, remainingMs: Math.round(this.#deps.lease.remainingMs()) },
        `lost contact with the cluster store: ${name} is read-only until this node reaches it again and still masters the branch`,
      );
    }
  }

  async #regained(regain: FenceRegain): Promise<void> {
    const { driver, index, masterNodes, logger, lease, leadMs } = this.#deps;
    await regain.caughtUp();
    for (const [fsId, f] of [...this.#fenced]) {
      if (lease.remainingMs() <= leadMs) return; // lost again meanwhile: stays fenced
      if (!index.branches.has(fsId)) {
        this.#fenced.delete(fsId);
      } else if (masterNodes.isMine(fsId)) {
        await driver.setLiveReadOnly(fsId, false);
        this.#fenced.delete(fsId);
        logger.info({ fsId, branch: f.name }, `in contact with the cluster store again: ${f.name} is writable`);
      } else {
        const master = masterNodes.get(fsId)?.nodeId ?? '';
        logger.warn(
          { fsId, branch: f.name, master },
          `in contact with the cluster store again, but node ${master} masters ${f.name} now: its uncommitted data goes into a stashing commit and what ${master} lacks to a -DIVERGED- branch`,
        );
        await regain.lost(fsId);
        this.#fenced.delete(fsId);
      }
    }
  }

  /** Branches this node's pool holds as their master's copy (not a replica, not retired). */
  #heldAsMaster(): string[] {
    const out: string[] = [];
    for (const [fsId, b] of this.#deps.index.branches) if (b.label.replica !== true && !b.label.retired) out.push(fsId);
    return out;
  }

  /** `<ns>/<dot>@<branch>` for logs and errors. */
  #name(fsId: string): string {
    const b = this.#deps.index.branches.get(fsId);
    const dot = b ? this.#deps.index.dots.get(b.label.dotId) : undefined;
    return dot && b ? `${dot.info.namespace}/${dot.info.name}@${b.label.branch}` : fsId;
  }
}
