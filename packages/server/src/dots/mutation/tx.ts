import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { type CommitOrigin, DotmeshError, type PhaseTimer } from '@dotmesh/core';
import {
  type CommitInfo,
  isPlainSocket,
  type SocketTransferOptions,
  type StorageDriver,
  type StreamTls,
  watchReads,
} from '@dotmesh/storage';
import type { Compare, Store, TxnOp } from '@dotmesh/store';
import { KEYS } from '../../cluster/store-keys.ts';
import type { FailpointName, Failpoints } from '../../failpoints.ts';
import type { Logger } from '../../log.ts';
import type { DotIndex, IndexedCommit } from '../dot-index.ts';
import type { BranchIntent, BranchLabel, CommitMetaRecord, DotInfo } from '../labels.ts';

/**
 * One mutation in progress (see DotMutations.run for the whole sequence). The operation's body
 * uses it for everything it changes:
 *
 * - **pool steps before the store write** are undoable: each records how to take it back
 *   (`createVolume`, `commit`, `importCommit`, `writeLabel`, `writeIntent`). If anything fails
 *   before the store write succeeds, they are undone in reverse order and nothing of the
 *   mutation remains visible anywhere;
 * - **store writes** (`storeOps`, `storeCompare`) go into ONE transaction, fenced on the
 *   master key revision of every branch the mutation needs to master;
 * - **view changes** (`view*`) reach the in-memory index only after the store write, so a
 *   reader never sees what might still be undone;
 * - **finishing steps** (`finish`) run after the store write. They must be idempotent and
 *   redoable from an intent recorded in the pool (start-up recovery redoes them), because an
 *   acknowledged mutation can no longer be undone (swapping live data, deleting volumes).
 */
/**
 * An incoming commit's framed stream: a Node stream, or a connection of its own on which the
 * peer starts sending once `onReady` is called.
 */
export type CommitInput =
  | { readonly stream: Readable; readonly onProgress?: (bytes: number) => void }
  | (SocketTransferOptions & { readonly socket: Duplex; readonly onReady: () => void })
  | (SocketTransferOptions & {
      /** Tells the peer to send and gives the data connection, TLS ended by the driver (@dotmesh/transfer data-connections.ts). */
      readonly data: () => Promise<{ readonly socket: Socket; readonly tls: StreamTls }>;
    });

export interface TxDeps {
  readonly driver: StorageDriver;
  readonly store: Store;
  readonly nodeId: string;
  readonly index: DotIndex;
  readonly failpoints: Failpoints;
  readonly logger: Logger;
  readonly newId: () => string;
  readonly timer: PhaseTimer;
}

export class MutationTx {
  readonly #deps: TxDeps;
  readonly #undo: Array<{ what: string; run: () => Promise<unknown> }> = [];
  readonly #view: Array<(index: DotIndex) => void> = [];
  readonly #finish: Array<{ what: string; run: () => Promise<void> }> = [];
  readonly #compares: Compare[] = [];
  readonly #ops: TxnOp[] = [];
  readonly #followUps: TxnOp[] = [];
  #storeWritten = false;

  constructor(deps: TxDeps) {
    this.#deps = deps;
  }

  get index(): DotIndex {
    return this.#deps.index;
  }

  newId(): string {
    return this.#deps.newId();
  }

  /** Counts the time since the previous mark as `name` (the operation's log line shows it). */
  mark(name: string): void {
    this.#deps.timer.mark(name);
  }

  /** Stops here when the failpoint is armed (an error, or a crash). */
  failpoint(name: FailpointName): void {
    this.#deps.failpoints.hit(name);
  }

  // ── undoable pool steps ────────────────────────────────────────────────────────────────

  /** A new volume with its label (empty, or a writable copy of `from`); undone by deleting it. */
  async createVolume(label: BranchLabel, from?: CommitOrigin): Promise<void> {
    await this.#deps.driver.createVolume(
      label.fsId,
      { ...label },
      from ? { from: { volumeId: from.fsId, commitId: from.commitId } } : {},
    );
    this.#undo.push({ what: `delete volume ${label.fsId}`, run: () => this.#deps.driver.deleteVolume(label.fsId) });
  }

  /** Takes over a volume an earlier, failed attempt left without commits (relabelled). */
  async relabelEmptyVolume(label: BranchLabel): Promise<void> {
    await this.#deps.driver.writeLabel(label.fsId, { ...label });
    this.#undo.push({ what: `delete volume ${label.fsId}`, run: () => this.#deps.driver.deleteVolume(label.fsId) });
  }

  /**
   * Makes the branch's live data read-only (a copy another node masters now). Never undone:
   * read-only is the safe state of a copy this node does not master, and a replacement of the
   * live data (a rollback, a take-over) brings a writable one.
   */
  async fenceLive(fsId: string): Promise<void> {
    await this.#deps.driver.setLiveReadOnly(fsId, true);
  }

  /** A read-only snapshot of the live state with its metadata inside; undone by deleting it. */
  async commit(fsId: string, commitId: string, meta: CommitMetaRecord): Promise<CommitInfo> {
    const info = await this.#deps.driver.commit(fsId, commitId, { ...meta });
    this.#undo.push({ what: `delete commit ${fsId}@${commitId}`, run: () => this.#deps.driver.deleteCommit(fsId, commitId) });
    return info;
  }

  /**
   * Applies a framed commit stream (visible only once whole and checked); undone by deleting
   * it. A plain TCP socket goes to the driver's importCommitFrom when it has one (no Node in the
   * data path); any other connection is read through Node, which watches for a silent peer.
   */
  async importCommit(fsId: string, input: CommitInput, parent: CommitOrigin | null): Promise<CommitInfo> {
    const driver = this.#deps.driver;
    const options = {
      ...(parent ? { parent: { volumeId: parent.fsId, commitId: parent.commitId } } : {}),
      ...(input.onProgress ? { onProgress: input.onProgress } : {}),
    };
    let info: CommitInfo;
    if ('data' in input) {
      if (!driver.importCommitFrom) throw new Error('a data connection needs a driver that reads sockets itself');
      const { socket, tls } = await input.data();
      info = await driver.importCommitFrom(fsId, socket, { ...input, ...options, tls, onReady: () => {} });
    } else if (!('socket' in input)) info = await driver.importCommit(fsId, input.stream, options);
    else if (driver.importCommitFrom && isPlainSocket(input.socket)) {
      info = await driver.importCommitFrom(fsId, input.socket, { ...input, ...options });
    } else {
      const socket = input.socket;
      socket.pause(); // what arrives waits for the driver's reader
      const stop = watchReads(socket, input.idleTimeoutMs, () =>
        socket.destroy(new DotmeshError('UNAVAILABLE', `the stream into ${fsId} went silent for ${input.idleTimeoutMs} ms`)),
      );
      try {
        input.onReady();
        info = await driver.importCommit(fsId, socket, options);
      } finally {
        stop();
      }
    }
    this.#undo.push({ what: `delete commit ${fsId}@${info.id}`, run: () => this.#deps.driver.deleteCommit(fsId, info.id) });
    return info;
  }

  /** Rewrites a label; undone by writing `previous` back. */
  async writeLabel(label: BranchLabel, previous: BranchLabel): Promise<void> {
    await this.#deps.driver.writeLabel(label.fsId, { ...label });
    this.#undo.push({
      what: `restore label of ${label.fsId}`,
      run: () => this.#deps.driver.writeLabel(label.fsId, { ...previous }),
    });
  }

  /**
   * Records what the finishing steps will do (the redo log): `label` with `intent`. Undone by
   * writing `previous` back.
   */
  async writeIntent(label: BranchLabel, intent: BranchIntent, previous: BranchLabel): Promise<void> {
    await this.writeLabel({ ...label, intent }, previous);
  }

  /** Drops the undo record of the latest step (it must stay even if later steps fail). */
  keepLastStep(): void {
    this.#undo.pop();
  }

  // ── the store transaction ──────────────────────────────────────────────────────────────

  storeCompare(...compares: Compare[]): void {
    this.#compares.push(...compares);
  }

  /** Adds writes to the transaction; a later write of a key replaces an earlier one. */
  storeOps(...ops: TxnOp[]): void {
    for (const op of ops) {
      if (op.type === 'put' || op.type === 'delete') {
        const at = this.#ops.findIndex((o) => (o.type === 'put' || o.type === 'delete') && o.key === op.key);
        if (at >= 0) this.#ops.splice(at, 1);
      }
      this.#ops.push(op);
    }
  }

  /**
   * Writes that need no atomicity with the mutation (cleanup of this node's own keys, e.g. a
   * large delete's): sent after the main transaction, in chunks; recovery rewrites them.
   */
  storeFollowUps(...ops: TxnOp[]): void {
    this.#followUps.push(...ops);
  }

  // ── view changes (applied after the store write) ───────────────────────────────────────

  viewAddDot(dotId: string, info: DotInfo): void {
    this.#view.push((index) => index.addDot(dotId, info));
  }

  viewSetDotInfo(dotId: string, info: DotInfo): void {
    this.#view.push((index) => index.setDotInfo(dotId, info));
  }

  viewRemoveDot(dotId: string): void {
    this.#view.push((index) => index.removeDot(dotId));
  }

  viewAddBranch(label: BranchLabel, commits: IndexedCommit[]): void {
    this.#view.push((index) => index.addBranch(label, commits));
  }

  viewSetLabel(label: BranchLabel): void {
    this.#view.push((index) => index.setLabel(label));
  }

  viewAddCommit(fsId: string, commit: IndexedCommit): void {
    this.#view.push((index) => index.addCommit(fsId, commit));
  }

  viewDropCommits(fsId: string, commitIds: readonly string[]): void {
    this.#view.push((index) => index.dropCommits(fsId, commitIds));
  }

  viewRemoveBranch(fsId: string): void {
    this.#view.push((index) => index.removeBranch(fsId));
  }

  // ── finishing steps (after the store write; idempotent, redoable from the intent) ──────

  finish(what: string, run: () => Promise<void>): void {
    this.#finish.push({ what, run });
  }

  // ── driver steps for finishing steps (no undo: they run once the mutation is stored) ──

  /** Removes a volume and its commits. Idempotent. */
  destroyVolume(fsId: string): Promise<void> {
    return this.#deps.driver.deleteVolume(fsId);
  }

  /** Replaces a volume's live state with a writable copy of `to`, atomically. */
  swapLive(fsId: string, to: CommitOrigin): Promise<void> {
    return this.#deps.driver.rollback(fsId, { volumeId: to.fsId, commitId: to.commitId });
  }

  /** Deletes a commit. Idempotent. */
  dropCommit(fsId: string, commitId: string): Promise<void> {
    return this.#deps.driver.deleteCommit(fsId, commitId);
  }

  /**
   * Garbage collection after the fact: commits `dropped` are gone from the pool and `label`
   * (already rewritten) no longer hides them. Updates the index at once and removes this
   * node's held-commit keys (own keys: the next start rewrites them if this fails).
   */
  async dropHeld(label: BranchLabel, dropped: readonly string[]): Promise<void> {
    const { index, store, nodeId, logger } = this.#deps;
    index.setLabel(label);
    index.dropCommits(label.fsId, dropped);
    const keys = dropped.map((c): TxnOp => ({ type: 'delete', key: KEYS.commit(nodeId, label.fsId, c) }));
    for (let i = 0; i < keys.length; i += 100) {
      await store.txn({ compare: [], success: keys.slice(i, i + 100) }).catch((err: unknown) => {
        logger.warn({ err, fsId: label.fsId }, 'could not remove the keys of collected commits');
      });
    }
  }

  /** Rewrites a label as the last finishing step (typically: the intent cleared). */
  rewriteLabel(label: BranchLabel): Promise<void> {
    return this.#deps.driver.writeLabel(label.fsId, { ...label });
  }

  // ── used by DotMutations only ──────────────────────────────────────────────────────────

  /** @internal */
  storeRequest(): { compare: Compare[]; ops: TxnOp[]; followUps: TxnOp[] } {
    return { compare: [...this.#compares], ops: [...this.#ops], followUps: [...this.#followUps] };
  }

  /** @internal */
  markStored(): void {
    this.#storeWritten = true;
  }

  /** @internal Undoes the pool steps in reverse order; never throws (logs what it could not undo). */
  async undo(): Promise<void> {
    if (this.#storeWritten) return;
    for (const step of this.#undo.reverse()) {
      try {
        await step.run();
      } catch (err) {
        // What stays behind is unacknowledged: recovery treats it as a half-done step.
        this.#deps.logger.error({ err, step: step.what }, 'could not undo a step of a failed mutation');
      }
    }
    this.#undo.length = 0;
  }

  /** @internal */
  applyView(): void {
    for (const change of this.#view) change(this.#deps.index);
  }

  /** @internal */
  async runFinish(): Promise<void> {
    for (const step of this.#finish) await step.run();
  }
}
