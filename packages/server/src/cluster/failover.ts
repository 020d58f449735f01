import type { CommitOrigin } from '@dotmesh/core';
import { putMaster } from '../dots/mutation/store-writes.ts';
import { activateBranch, type HandoffContext } from './handoff.ts';
import { type PinSource, pinSource } from './pinned.ts';
import { KEYS } from './store-keys.ts';
import type { ClusterView } from './view.ts';

export interface FailoverSettings {
  /** false: a branch whose master node is gone waits for an admin (as before failover existed). */
  readonly enabled: boolean;
  /** Every this often, every branch is checked for a master node that is gone. */
  readonly sweepMs: number;
  /**
   * A node this node has not seen live since it started (the cluster was down) counts as gone
   * only after this long: it may be starting too. A node seen leaving (its lease expired)
   * counts as gone at once. The lease TTL.
   */
  readonly absentGraceMs: number;
  /**
   * Whether `nodeId` announced a planned restart whose grace still runs (planned-restart.ts):
   * its branches wait for it. Absent: no node is ever waited for.
   */
  readonly restartPending?: (nodeId: string) => Promise<boolean>;
}

export const DEFAULT_FAILOVER_SWEEP_MS = 3000;

/** A live node holding a copy of a branch, and the history its copy holds. */
export interface Candidate {
  readonly nodeId: string;
  readonly history: readonly CommitOrigin[];
}

/**
 * The live node a branch whose master is gone moves to: among the live nodes (with a
 * node-to-node endpoint) advertising a copy with a head, the one whose copy holds the longest
 * history of the branch — the newest commit, since replicas hold prefixes of the master's
 * history — ties broken by the lowest node id. Every node computes the same from the same
 * view. undefined: no live node holds a copy.
 */
export function chooseNewMaster(
  view: Pick<ClusterView, 'copiesOf' | 'node' | 'historyOn'>,
  fsId: string,
  gone: string,
): Candidate | undefined {
  const candidates: Candidate[] = [];
  for (const [nodeId, copy] of view.copiesOf(fsId)) {
    const node = view.node(nodeId);
    if (nodeId === gone || !node || node.clusterPort === 0 || !copy.head) continue;
    candidates.push({ nodeId, history: view.historyOn(nodeId, copy.head) });
  }
  candidates.sort((a, b) => b.history.length - a.history.length || (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  return candidates[0];
}

export type FailoverContext = HandoffContext;

/**
 * Automatic failover: when a branch's master node is gone (its `servers/addresses/<id>` key
 * deleted, i.e. its lease expired), the branch moves to the live node holding its newest commit
 * (chooseNewMaster), unless it is pinned. Every live node runs the same choice; only the
 * chosen node writes: one compare-and-swap of the master key, against the revision it saw, the
 * gone node's address key and planned-restart key still absent, the pin record as seen and no
 * tombstone — so two
 * electors never both win, a node that came back keeps its branches, and a pin set meanwhile
 * holds. That node then takes the branch over (activateBranch: its replica's live data becomes
 * the head), as after a handoff. Runs when the view sees a node leave, and on a sweep every
 * `sweepMs` (a chosen node that died or failed meanwhile, a master gone while the whole
 * cluster was down).
 *
 * A node restarted within its lease TTL keeps its branches: its address key never went away. A
 * node that stopped cleanly and announced a planned restart (planned-restart.ts) keeps them
 * while its restart grace runs.
 * What only the gone node held is lost: its uncommitted data and the commits not yet
 * replicated (none of a `sync` branch's acknowledged ones).
 */
export class Failover {
  readonly #ctx: FailoverContext;
  readonly #settings: FailoverSettings;
  readonly #now: () => number;
  /** Node id → when this node first saw it absent (monotonic ms). */
  readonly #absentSince = new Map<string, number>();
  /** Pinned branches whose master is gone, logged once each. */
  readonly #strandedPinned = new Set<string>();
  /** Gone nodes whose planned restart is awaited, logged once each. */
  readonly #awaited = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #failedOver = 0;

  constructor(ctx: FailoverContext, settings: FailoverSettings, now: () => number = () => performance.now()) {
    this.#ctx = ctx;
    this.#settings = settings;
    this.#now = now;
  }

  start(): void {
    if (!this.#settings.enabled) return;
    this.#unsubscribe = this.#ctx.view.onChange((change) => {
      if (change.kind !== 'node') return;
      if (this.#ctx.view.node(change.nodeId)) {
        this.#absentSince.delete(change.nodeId);
        return;
      }
      // Its lease expired: it was silent for a whole TTL already.
      this.#absentSince.set(change.nodeId, this.#now() - this.#settings.absentGraceMs);
      // After the rest of that revision (its other keys) is applied.
      setImmediate(() => this.sweep());
    });
    this.sweep();
    this.#timer = setInterval(() => this.sweep(), this.#settings.sweepMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#unsubscribe?.();
    await this.#running;
  }

  /** Counts for DumpInternalState (`failover.*`). */
  state(): Record<string, string> {
    return {
      'failover.enabled': String(this.#settings.enabled),
      'failover.failedOver': String(this.#failedOver),
      'failover.strandedPinned': String(this.#strandedPinned.size),
      'failover.awaitingRestart': String(this.#awaited.size),
    };
  }

  /** Checks every branch now (one sweep at a time; one asked for meanwhile runs after it). */
  sweep(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#sweepOnce().catch((err: unknown) => this.#ctx.logger.warn({ err }, 'the failover sweep failed'));
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #sweepOnce(): Promise<void> {
    const ctx = this.#ctx;
    const now = this.#now();
    const restarting = new Map<string, Promise<boolean>>();
    for (const [fsId, mastership] of [...ctx.masterNodes.all()]) {
      if (this.#stopped) return;
      const gone = mastership.nodeId;
      if (gone === ctx.nodeId || ctx.view.node(gone)) continue;
      const since = this.#absentSince.get(gone) ?? now;
      this.#absentSince.set(gone, since);
      if (now - since < this.#settings.absentGraceMs) continue;
      if (!restarting.has(gone)) restarting.set(gone, this.#restartPending(gone));
      if (await restarting.get(gone)) continue;
      const branch = ctx.view.branch(fsId);
      if (!branch || ctx.view.isDeleted(fsId) || ctx.view.isDeleted(branch.dotId)) continue;
      const pin = pinSource(ctx.view.pinnedOf(branch.dotId), fsId);
      if (pin !== '') {
        this.#logStranded(fsId, gone, pin);
        continue;
      }
      this.#strandedPinned.delete(fsId);
      const chosen = chooseNewMaster(ctx.view, fsId, gone);
      if (chosen?.nodeId !== ctx.nodeId) continue;
      await this.#takeOver(fsId, branch.dotId, gone, mastership.revision, chosen).catch((err: unknown) =>
        ctx.logger.warn({ err, fsId, gone }, 'could not fail a branch over to this node; the next sweep tries again'),
      );
    }
  }

  async #restartPending(gone: string): Promise<boolean> {
    const pending = await (this.#settings.restartPending?.(gone) ?? Promise.resolve(false));
    if (pending && !this.#awaited.has(gone)) {
      this.#awaited.add(gone);
      this.#ctx.logger.info(
        { node: gone },
        'a node that announced a planned restart is away: its branches wait for it until its restart grace ends',
      );
    } else if (!pending) this.#awaited.delete(gone);
    return pending;
  }

  async #takeOver(fsId: string, dotId: string, gone: string, revision: number, chosen: Candidate): Promise<void> {
    const ctx = this.#ctx;
    if (!ctx.index.branches.has(fsId)) return;
    const pinRecord = ctx.view.pinnedOf(dotId);
    const moved = await ctx.mutations.run(
      {
        op: 'mastership',
        what: `fail branch ${fsId} over from node ${gone}`,
        dotId: ctx.index.requireBranch(fsId).label.dotId,
        dotLock: 'exclusive',
        queues: [fsId],
        evenWhenFull: true,
      },
      async (tx) => {
        const now = ctx.masterNodes.get(fsId);
        if (now?.nodeId !== gone || now.revision !== revision) return false;
        tx.storeCompare(
          { key: KEYS.master(fsId), target: 'modRevision', op: '==', value: revision },
          { key: KEYS.address(gone), target: 'createRevision', op: '==', value: 0 },
          { key: KEYS.restarting(gone), target: 'createRevision', op: '==', value: 0 },
          pinRecord
            ? { key: KEYS.pinned(dotId), target: 'modRevision', op: '==', value: pinRecord.revision }
            : { key: KEYS.pinned(dotId), target: 'createRevision', op: '==', value: 0 },
          { key: KEYS.deleted(fsId), target: 'createRevision', op: '==', value: 0 },
        );
        tx.storeOps(putMaster(fsId, ctx.nodeId));
        return true;
      },
    );
    if (!moved) return;
    this.#failedOver++;
    const head = chosen.history.at(-1);
    ctx.logger.warn(
      { fsId, from: gone, head: head?.commitId, commits: chosen.history.length },
      'failed a branch over: its master node is gone and this node holds its newest commit; it masters it now',
    );
    await activateBranch(ctx, fsId);
  }

  #logStranded(fsId: string, gone: string, pin: Exclude<PinSource, ''>): void {
    if (this.#strandedPinned.has(fsId)) return;
    this.#strandedPinned.add(fsId);
    this.#ctx.logger.warn(
      { fsId, master: gone, pinned: pin },
      'the master node of a pinned branch is gone: it does not fail over (dm dot smash-branch-master moves it by hand)',
    );
  }
}
