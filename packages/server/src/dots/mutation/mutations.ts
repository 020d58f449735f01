import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError, type PhaseTimer, phaseTimer } from '@dotmesh/core';
import type { StorageDriver } from '@dotmesh/storage';
import { type Compare, isOutcomeUnknown, type Store, type TxnOp } from '@dotmesh/store';
import type { MasterNodes } from '../../cluster/master-nodes.ts';
import type { NodeLease } from '../../cluster/node-lease.ts';
import { KEYS } from '../../cluster/store-keys.ts';
import type { KeyedQueue } from '../../concurrency/keyed-queue.ts';
import type { KeyedRwLock } from '../../concurrency/rw-lock.ts';
import type { Failpoints } from '../../failpoints.ts';
import type { Logger } from '../../log.ts';
import type { WriteGuard } from '../../pool/host-space-guard.ts';
import type { DotIndex } from '../dot-index.ts';
import type { DotEvents, MutationOp } from './events.ts';
import { wasApplied } from './settle.ts';
import { MutationTx } from './tx.ts';

/** Ops per store transaction, under etcd's default limit of 128. */
export const TXN_OPS = 100;

/** How often a mutation whose store write timed out asks the store whether it was applied. */
const SETTLE_INTERVAL_MS = 1000;

export interface MutationScope {
  readonly op: MutationOp;
  /** What the caller asked for, for errors and logs ("commit admin/apples"). */
  readonly what: string;
  /** The dot whose lock is taken (a new dot's id for create and fork). */
  readonly dotId: string;
  /** Exclusive for dot-wide work (delete, rollback, receive, stash), shared otherwise. */
  readonly dotLock: 'shared' | 'exclusive';
  /** Taken before the dot lock: `name:<ns>/<name>` when a name is being claimed. */
  readonly nameLock?: string;
  /**
   * Other dots' locks held shared after the dot lock, so what the mutation copies from them stays
   * (fork: its parent). Only dots made by this mutation may take this: their lock is new, so the
   * order cannot deadlock.
   */
  readonly readLocks?: readonly string[];
  /** Branch queues, taken in this order after the dot lock (one mutation per branch at a time). */
  readonly queues?: readonly string[];
  /**
   * Branches this node must master for the mutation: checked before any step, and the store
   * transaction compares each one's master key revision, so a mastership that moved meanwhile
   * makes the whole mutation fail and be undone.
   */
  readonly mastered?: readonly string[];
  /**
   * Allowed while the host-space guard refuses writes: deletes (they free space) and changes
   * of a label alone.
   */
  readonly evenWhenFull?: boolean;
  /**
   * Where the time goes, for the operation's log line: the path marks `locks` (waiting),
   * `store` (the transaction) and `finish`; the body marks its own steps (`tx.mark`), and
   * whatever it does not mark counts as `steps`.
   */
  readonly timer?: PhaseTimer;
}

export interface MutationDeps {
  readonly driver: StorageDriver;
  readonly index: DotIndex;
  readonly store: Store;
  readonly masterNodes: MasterNodes;
  readonly lease: NodeLease;
  readonly failpoints: Failpoints;
  readonly logger: Logger;
  readonly events: DotEvents;
  readonly locks: KeyedRwLock;
  readonly queues: KeyedQueue;
  readonly writeGuard: WriteGuard;
  readonly newId: () => string;
  /** Refuses at once while the cluster store is known to be unavailable (cluster/store-health.ts). */
  readonly storeHealth?: { assertAvailable(what: string): void };
  /** Refuses changes of branches made read-only because this node lost contact (cluster/fence.ts). */
  readonly fence?: { assertWritable(fsIds: readonly string[], what: string): void };
}

/**
 * The one path every change to a dot takes (create, commit, branch, rollback, delete,
 * receive, stash, rename, fork, collaborators, mastership). In order:
 *
 *  1. locks: the name lock, the dot lock, the branch queues;
 *  2. may this node do it: no branch in `scope.mastered` is fenced (read-only since this node
 *     lost contact with the store), the store is not known to be unavailable, its lease
 *     deadline has not passed, and it masters every branch in `scope.mastered`;
 *  3. the operation's body: pool steps that can be undone (an intent recorded in the pool, the
 *     driver step, the label), failpoints between them;
 *  4. ONE store transaction comparing the master key revision of every mastered branch (and
 *     whatever the body adds); own keys are written under this node's lease, so a node whose
 *     lease expired cannot write either;
 *     → if anything up to here fails, the pool steps are undone and the caller gets the error:
 *       nothing of the mutation is visible anywhere;
 *     → if the transaction's outcome is unknown (the store timed out: it may have applied it),
 *       the caller gets UNAVAILABLE at once and the mutation is *settled* in the background:
 *       once the store answers, the keys it wrote tell whether it was applied; then steps 5–7
 *       run, or the pool steps are undone. Until then the dot refuses other mutations, so the
 *       pool and the store never disagree unnoticed;
 *  5. the in-memory view (readers see the change from here on);
 *  6. finishing steps that cannot be undone (swap live data, delete volumes), redone from the
 *     pool's intent by start-up recovery if the process dies before they end;
 *  7. an event for the parts that follow dots (replication, containers, metrics).
 *
 * Nothing else in the server calls the driver's mutating methods or changes the index.
 */
export class DotMutations {
  readonly #deps: MutationDeps;
  /** Dots with a mutation whose store write is not settled yet (see `run`), to what settles it. */
  readonly #unsettled = new Map<string, Promise<void>>();
  #view: { caughtUp(revision: number): Promise<void> } | undefined;

  constructor(deps: MutationDeps) {
    this.#deps = deps;
  }

  get nodeId(): string {
    return this.#deps.masterNodes.nodeId;
  }

  get events(): DotEvents {
    return this.#deps.events;
  }

  /** This node's lease id: own keys written outside a mutation (recovery) are bound to it. */
  get leaseId(): string {
    return this.#deps.lease.id;
  }

  /**
   * Reads right after a mutation see it: once a mutation is stored, it waits until `view` (the
   * cluster view every read of names uses) has seen its revision.
   */
  followView(view: { caughtUp(revision: number): Promise<void> }): void {
    this.#view = view;
  }

  /** Branch queues with work queued or running (DumpInternalState). */
  get activeQueues(): number {
    return this.#deps.queues.activeKeys;
  }

  /**
   * Start-up recovery, before the server serves anything: `body` redoes or drops what
   * interrupted mutations left in the pool, with the finishing-step methods of the tx (no
   * locks, no fences, no store transaction: recovery writes the store itself afterwards, see
   * reconcile-store.ts).
   */
  async recover<T>(body: (tx: MutationTx) => Promise<T>): Promise<T> {
    const { driver, store, masterNodes, index, failpoints, logger, newId } = this.#deps;
    return body(
      new MutationTx({
        driver,
        store,
        nodeId: masterNodes.nodeId,
        index,
        failpoints,
        logger,
        newId,
        timer: phaseTimer(() => performance.now()),
      }),
    );
  }

  async run<T>(scope: MutationScope, body: (tx: MutationTx) => Promise<T>): Promise<T> {
    const { locks, queues } = this.#deps;
    const inQueues = (i: number): Promise<T> => {
      const key = scope.queues?.[i];
      return key === undefined ? this.#guarded(scope, body) : queues.run(key, () => inQueues(i + 1));
    };
    const inReadLocks = (i: number): Promise<T> => {
      const key = scope.readLocks?.[i];
      return key === undefined ? inQueues(0) : locks.shared(key, () => inReadLocks(i + 1));
    };
    const inDotLock = () => locks[scope.dotLock](scope.dotId, () => inReadLocks(0));
    return scope.nameLock ? locks.exclusive(scope.nameLock, inDotLock) : inDotLock();
  }

  #guarded<T>(scope: MutationScope, body: (tx: MutationTx) => Promise<T>): Promise<T> {
    const { writeGuard } = this.#deps;
    if (scope.evenWhenFull) return writeGuard.whileWritable(() => this.#locked(scope, body));
    writeGuard.assertWritable(scope.what);
    return this.#locked(scope, body);
  }

  async #locked<T>(scope: MutationScope, body: (tx: MutationTx) => Promise<T>): Promise<T> {
    const { lease, masterNodes, driver, index, failpoints, logger, newId } = this.#deps;
    const timer = scope.timer ?? phaseTimer(() => performance.now());
    timer.mark('locks');
    this.#assertSettled(scope);
    this.#deps.fence?.assertWritable(scope.mastered ?? [], scope.what);
    this.#deps.storeHealth?.assertAvailable(scope.what);
    lease.assertLive(scope.what);
    const fences = (scope.mastered ?? []).map((fsId) => ({ fsId, mastership: masterNodes.requireMine(fsId, scope.what) }));
    const tx = new MutationTx({
      driver,
      store: this.#deps.store,
      nodeId: masterNodes.nodeId,
      index,
      failpoints,
      logger,
      newId,
      timer,
    });
    let result: T;
    let bodyDone = false;
    try {
      result = await body(tx);
      bodyDone = true;
      timer.mark('steps');
      await this.#write(scope, tx, fences);
      timer.mark('store');
    } catch (e) {
      if (bodyDone && isOutcomeUnknown(e)) throw this.#settleLater(scope, tx, e as DotmeshError);
      await tx.undo();
      throw e;
    }
    tx.applyView();
    await tx.runFinish();
    timer.mark('finish');
    this.#deps.events.emit({ op: scope.op, dotId: scope.dotId });
    return result;
  }

  /** Dots whose last mutation is not settled yet (DumpInternalState, tests). */
  get unsettled(): readonly string[] {
    return [...this.#unsettled.keys()];
  }

  /** Resolves once no mutation of `dotId` waits to be settled (tests). */
  async settled(dotId: string): Promise<void> {
    await this.#unsettled.get(dotId);
  }

  #assertSettled(scope: MutationScope): void {
    if (!this.#unsettled.has(scope.dotId)) return;
    throw new DotmeshError(
      'UNAVAILABLE',
      `cannot ${scope.what}: an earlier change to this dot is waiting for the cluster store to say whether it was stored`,
      { hint: 'it is kept or undone once the store answers; run it again then' },
    );
  }

  /**
   * The store transaction of `tx` timed out: it may or may not have been applied. Settles it in
   * the background (the caller does not wait): asks the store every SETTLE_INTERVAL_MS until it
   * answers; if the transaction was applied, the mutation completes (view, finishing steps,
   * event), else its pool steps are undone. Returns the error for the caller.
   */
  #settleLater(scope: MutationScope, tx: MutationTx, cause: DotmeshError): DotmeshError {
    const { store, logger, lease } = this.#deps;
    const ops = tx.storeRequest().ops.map((op) => withLease(op, lease.id));
    const settle = async () => {
      for (;;) {
        const applied = await wasApplied(store, ops);
        if (applied === true) {
          tx.markStored();
          tx.applyView();
          await tx.runFinish();
          this.#deps.events.emit({ op: scope.op, dotId: scope.dotId });
          logger.warn({ what: scope.what }, 'a change whose store write timed out was stored after all: it is kept');
          return;
        }
        if (applied === false) {
          await tx.undo();
          logger.warn({ what: scope.what }, 'a change whose store write timed out was not stored: its pool steps are undone');
          return;
        }
        await sleep(SETTLE_INTERVAL_MS);
      }
    };
    const running = settle()
      .catch((err: unknown) => logger.error({ err, what: scope.what }, 'could not settle a change whose store write timed out'))
      .finally(() => this.#unsettled.delete(scope.dotId));
    this.#unsettled.set(scope.dotId, running);
    return new DotmeshError(
      'UNAVAILABLE',
      `cannot ${scope.what}: the cluster store did not confirm it in time (${cause.message})`,
      {
        hint: 'the change is kept if the store applied it, and undone if not, once the store answers; check with dm log then',
        data: { ...cause.data, outcome: 'unknown' },
        cause,
      },
    );
  }

  async #write(
    scope: MutationScope,
    tx: MutationTx,
    fences: ReadonlyArray<{ fsId: string; mastership: { revision: number } }>,
  ): Promise<void> {
    const { store, lease, logger } = this.#deps;
    const request = tx.storeRequest();
    const compare: Compare[] = [
      ...fences.map(
        (f): Compare => ({ key: KEYS.master(f.fsId), target: 'modRevision', op: '==', value: f.mastership.revision }),
      ),
      ...request.compare,
    ];
    // The deadline again: the body may have taken long (a large import).
    lease.assertLive(scope.what);
    if (request.ops.length > 0 || compare.length > 0) {
      const ops = request.ops.map((op) => withLease(op, lease.id));
      const result = await store.txn({ compare, success: ops });
      if (!result.succeeded) {
        throw new DotmeshError(
          'NOT_MASTER',
          `cannot ${scope.what}: the cluster changed meanwhile (the branch moved to another node, or its name or id was taken)`,
          { hint: 'run it again', data: { branches: fences.map((f) => f.fsId) } },
        );
      }
      this.#deps.masterNodes.observe(ops, result.revision);
      await this.#view?.caughtUp(result.revision);
    }
    tx.markStored();
    for (let i = 0; i < request.followUps.length; i += TXN_OPS) {
      const chunk = request.followUps.slice(i, i + TXN_OPS).map((op) => withLease(op, lease.id));
      await store.txn({ compare: [], success: chunk }).catch((err: unknown) => {
        // Own keys only: the next start rewrites them from the pool.
        logger.warn({ err, what: scope.what }, 'could not write follow-up store changes');
      });
    }
  }
}

/** Own keys (`servers/…/<thisNode>/…`) are bound to this node's lease. */
function withLease(op: TxnOp, leaseId: string): TxnOp {
  if (op.type === 'put' && op.key.startsWith(`${KEYS.commitsPrefix}`)) return { ...op, lease: leaseId };
  if (op.type === 'put' && op.key.startsWith(`${KEYS.statesPrefix}`)) return { ...op, lease: leaseId };
  return op;
}
