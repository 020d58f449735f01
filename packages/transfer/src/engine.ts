import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DotmeshError,
  errorObject,
  isDotmeshError,
  MASTER_BRANCH,
  normalizeBranch,
  phaseTimer,
  planTransfer,
  type TransferPlan,
  validateName,
} from '@dotmesh/core';
import type { ParamsOf, TransferPollResult } from '@dotmesh/rpc';
import type { TransferCaller, TransferHost } from './host.ts';
import { activeContainersError } from './incoming.ts';
import { connectPeer } from './peer-connect.ts';
import type { TransferRecords } from './records.ts';
import type { TransferSide } from './side.ts';
import { type HistoryEntry, holds, volumeOf, type WireDot, wireHistory } from './wire-dot.ts';

export interface TransferTiming {
  /** A connection that moves no byte for this long is dropped (then retried). */
  readonly idleTimeoutMs: number;
  /** Attempts per transfer (each resumes from what arrived whole). */
  readonly attempts: number;
  /** Backoff before attempt n+1: n × this. */
  readonly backoffMs: number;
}

export const DEFAULT_TRANSFER_TIMING: TransferTiming = { idleTimeoutMs: 30_000, attempts: 5, backoffMs: 2_000 };

type TransferRequest = ParamsOf<'Transfer'>;

/** Both sides' view of the dot (the receiver's null when it does not have it). */
interface States {
  readonly sender: WireDot;
  readonly receiver: WireDot | null;
}

/** The two ends of one transfer and how the dot is named on each. */
interface Ends {
  readonly direction: 'push' | 'pull';
  readonly sender: TransferSide;
  readonly receiver: TransferSide;
  readonly senderName: { namespace: string; name: string };
  readonly receiverName: { namespace: string; name: string };
  readonly branch: string;
  readonly stash: boolean;
  /**
   * A transfer with a record (`Transfer`): its size is predicted for the progress it shows.
   * Sends to another node keep none, so they skip that look at the sending pool.
   */
  readonly recorded: boolean;
}

/**
 * Push and pull between clusters (the `Transfer` RPC). The server that gets the RPC (the
 * initiator) dials the peer, so only the peer must be reachable. Preflight runs inside the
 * RPC, so its errors reach `dm` directly with the original's texts: the peer's hello, both
 * sides' states, the id check, the receiving branch's containers and uncommitted changes.
 * Then the RPC returns the transfer's id and the transfer runs in the background; `GetTransfer`
 * shows its progress.
 *
 * Each attempt re-reads both sides and plans from what the receiver holds now
 * (core/transfer-plan.ts), so a retry or a re-run resumes after the last commit that arrived
 * whole, and a plan never wedges: it sends, does nothing, stashes (with
 * `StashDivergence`) or refuses with the common commit and each side's extra commits.
 * Network failures, silent links (idle timeout) and corrupt streams are retried with backoff;
 * refusals (permissions, divergence, a full pool) are not.
 *
 * One engine for every transfer: push and pull between clusters, and sending a branch to
 * another node of this cluster (handoff, replication). The ends are TransferSides: the host's
 * own side (TransferHost.localSide, which makes every change through the host's mutation path)
 * and peers reached over HTTP(S) (PeerSide).
 */
export class TransferEngine<C extends TransferCaller> {
  readonly #host: TransferHost<C>;
  readonly #records: TransferRecords;
  readonly #timing: () => TransferTiming;
  readonly #streamUpgrade: boolean;
  readonly #dataConnections: boolean;
  readonly #running = new Set<Promise<void>>();

  /** `streamUpgrade`: this server's endpoints take upgraded commit streams (peer-streams.ts). */
  constructor(
    host: TransferHost<C>,
    records: TransferRecords,
    o: { timing: () => TransferTiming; streamUpgrade: boolean; dataConnections?: boolean },
  ) {
    this.#host = host;
    this.#records = records;
    this.#timing = o.timing;
    this.#streamUpgrade = o.streamUpgrade;
    this.#dataConnections = o.dataConnections === true;
  }

  /**
   * This server as a transfer side for `caller` (also what the peer endpoints use); `replica`:
   * for another node of this cluster, the branch's master, sending it commits
   * (LocalSideOptions.replica).
   */
  localSide(caller: C, o: { replica?: boolean } = {}): TransferSide {
    return this.#host.localSide(caller, {
      replica: o.replica === true,
      idleTimeoutMs: () => this.#timing().idleTimeoutMs,
      corrupt: () => this.#host.failpoints.take('transfer.corrupt-stream'),
      streamUpgrade: this.#streamUpgrade,
    });
  }

  async start(caller: C, req: TransferRequest): Promise<string> {
    const direction = req.Direction;
    if (direction !== 'push' && direction !== 'pull') {
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `Direction must be "push" or "pull", got ${JSON.stringify(direction.slice(0, 50))}`,
      );
    }
    const local = { namespace: validateName('namespace', req.LocalNamespace), name: validateName('dot', req.LocalName) };
    const remote = { namespace: validateName('namespace', req.RemoteNamespace), name: validateName('dot', req.RemoteName) };
    const localBranch = normalizeBranch(req.LocalBranchName);
    const remoteBranch = normalizeBranch(req.RemoteBranchName);
    if (localBranch !== remoteBranch) {
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `a branch keeps its name across clusters: ${localBranch} cannot be transferred as ${remoteBranch}`,
        {
          hint: 'use the same branch name on both sides',
        },
      );
    }
    const timing = this.#timing();
    const { side: peer, hello } = await connectPeer(
      {
        host: req.Peer,
        port: req.Port,
        user: req.User,
        apiKey: req.ApiKey,
        certSha256: req.PeerCertSha256,
        https: req.PeerHttps,
        ...(req.PeerCaPin ? { caPin: req.PeerCaPin } : {}),
      },
      {
        driver: this.#host.driverKind,
        idleTimeoutMs: timing.idleTimeoutMs,
        streamUpgrade: this.#streamUpgrade,
        dataConnections: this.#dataConnections,
      },
    );
    const me = this.localSide(caller);
    const [sender, receiver, senderName, receiverName] =
      direction === 'push' ? ([me, peer, local, remote] as const) : ([peer, me, remote, local] as const);
    const ends: Ends = {
      direction,
      sender,
      receiver,
      senderName,
      receiverName,
      branch: localBranch,
      stash: req.StashDivergence,
      recorded: true,
    };
    const [senderState, receiverState] = await Promise.all([
      senderStateOf(ends),
      ends.receiver.state(ends.receiverName.namespace, ends.receiverName.name),
    ]);
    const localState = direction === 'push' ? senderState : receiverState;
    const remoteState = direction === 'push' ? receiverState : senderState;
    if (!localState && !remoteState) throw new DotmeshError('DOT_NOT_FOUND', "Both local and remote filesystems don't exist.");
    if (direction === 'push' && !localState) throw new DotmeshError('DOT_NOT_FOUND', "Can't push when local doesn't exist");
    if (direction === 'pull' && !remoteState) throw new DotmeshError('DOT_NOT_FOUND', "Can't pull when remote doesn't exist");
    if (localState && remoteState && localState.id !== remoteState.id) {
      throw new DotmeshError(
        'CONFLICT',
        `Cannot reconcile filesystems with different ids, remote=${remoteState.id}, local=${localState.id}`,
        {
          hint: 'these are two different dots with the same name: transfer under another name (--remote-name / --local-name)',
          data: { localDotId: localState.id, remoteDotId: remoteState.id },
        },
      );
    }
    const fsId = senderBranch(senderState!, ends.branch, ends.senderName);
    checkReceiverWritable(receiverState, fsId, ends.stash);
    if (!ends.stash) refuseBranchClashes(branchClashes(senderState!, receiverState, fsId), ends.receiverName);

    const id = randomUUID();
    const record: TransferPollResult = {
      TransferRequestId: id,
      Peer: req.Peer,
      User: req.User,
      ApiKey: '',
      Direction: direction,
      LocalNamespace: local.namespace,
      LocalName: local.name,
      LocalBranchName: req.LocalBranchName,
      RemoteNamespace: remote.namespace,
      RemoteName: remote.name,
      RemoteBranchName: req.RemoteBranchName,
      FilesystemId: fsId,
      InitiatorNodeId: this.#host.nodeId,
      PeerNodeId: hello.nodeId,
      StartingCommit: '',
      TargetCommit: req.TargetCommit,
      Index: 0,
      Total: 1,
      Status: 'starting',
      NanosecondsElapsed: 0,
      Size: 0,
      Sent: 0,
      Message: '',
      Error: null,
    };
    this.#records.create(record, caller.id);
    this.#host.logger.info({ transfer: id, direction, peer: peer.label, local, remote, branch: ends.branch }, 'transfer started');
    const run = this.#run(id, ends, fsId, { sender: senderState!, receiver: receiverState }).finally(() =>
      this.#running.delete(run),
    );
    this.#running.add(run);
    return id;
  }

  /**
   * Makes another node of this cluster (`peer`, its node endpoint) hold every commit of branch
   * `fsId`'s history, into its replica: the sending half of a handoff (and of replication).
   * Its own diverged commits, if any, are kept on a -DIVERGED- branch there, as a push with
   * stash would. Retried like a transfer; no record is kept.
   */
  async sendToNode(peer: TransferSide, dotId: string, fsId: string): Promise<void> {
    const names = this.#host.branchNames(dotId, fsId);
    if (!names) throw new DotmeshError('DOT_NOT_FOUND', `No such filesystem id '${fsId}'`);
    const name = { namespace: names.namespace, name: names.name };
    const ends: Ends = {
      direction: 'push',
      sender: this.localSide(this.#host.clusterCaller),
      receiver: peer,
      senderName: name,
      receiverName: name,
      branch: names.branch,
      stash: true,
      recorded: false,
    };
    const timing = this.#timing();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#attempt(`node-send-${randomUUID()}`, ends, fsId, () => 0);
        return;
      } catch (e) {
        if (attempt >= timing.attempts || !retryable(e)) throw e;
        this.#host.logger.warn({ err: e, attempt, fsId, peer: peer.label }, 'sending commits to another node failed; retrying');
        await sleep(timing.backoffMs * attempt);
      }
    }
  }

  get(caller: C, id: string): Promise<TransferPollResult> {
    return this.#records.get(id, caller.id, this.#host.isAdmin(caller));
  }

  /**
   * Waits for running transfers, at most `timeoutMs` (shutdown: a transfer still running after
   * that is cut; its record reads "interrupted by a restart" at the next start).
   */
  async idle(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running]),
      new Promise((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  /** `preflight`: both sides' states as just read by start(), used by the first attempt. */
  async #run(id: string, ends: Ends, fsId: string, preflight: States): Promise<void> {
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started);
    const timing = this.#timing();
    for (let attempt = 1; ; attempt++) {
      try {
        const message = await this.#attempt(id, ends, fsId, elapsed, attempt === 1 ? preflight : undefined);
        this.#records.update(id, { Status: 'finished', Message: message, Error: null, NanosecondsElapsed: elapsed() }, true);
        this.#host.logger.info({ transfer: id, message }, 'transfer finished');
        return;
      } catch (e) {
        const retry = attempt < timing.attempts && retryable(e);
        const error = errorObject(e);
        const text = error.hint ? `${error.message} (${error.hint})` : error.message;
        this.#host.logger.warn({ transfer: id, attempt, err: text, code: error.code, retry }, 'transfer attempt failed');
        if (!isDotmeshError(e)) this.#host.logger.error({ transfer: id, err: e }, 'transfer internal error');
        const failed = { Message: text, Error: error, NanosecondsElapsed: elapsed() };
        if (!retry) {
          this.#records.update(id, { Status: 'error', ...failed }, true);
          return;
        }
        this.#records.update(id, { Status: `retry ${attempt}`, ...failed }, true);
        await sleep(timing.backoffMs * attempt);
      }
    }
  }

  /**
   * One pass: plan from both sides' current state (`known`, else read now), stash if needed,
   * send. Returns the final message.
   */
  async #attempt(id: string, ends: Ends, fsId: string, elapsed: () => number, known?: States): Promise<string> {
    const { sender, receiver } = ends;
    const update = (change: Partial<TransferPollResult>, important = false) =>
      this.#records.update(id, { ...change, NanosecondsElapsed: elapsed() }, important);
    // `states`: both sides read, stashed, planned; `stream`: until the last byte left;
    // `commit`: until the receiver said the commit is durable.
    const phase = phaseTimer(() => performance.now());
    let senderState = known ? known.sender : await senderStateOf(ends);
    if (!senderState) throw new DotmeshError('DOT_NOT_FOUND', `${sender.label}: ${fmt(ends.senderName)} no longer exists`);
    let receiverState = known ? known.receiver : await receiver.state(ends.receiverName.namespace, ends.receiverName.name);
    const notes: string[] = [];
    if (ends.stash && (volumeOf(receiverState ?? EMPTY, fsId)?.dirtyBytes ?? 0) > 0) {
      update({ Status: 'committing dirty data ready for stashing' }, true);
      await receiver.commitDirty(fsId);
      receiverState = await receiver.state(ends.receiverName.namespace, ends.receiverName.name);
    }
    checkReceiverWritable(receiverState, fsId, ends.stash);
    const clashes = branchClashes(senderState, receiverState, fsId);
    if (clashes.length > 0) {
      if (!ends.stash) refuseBranchClashes(clashes, ends.receiverName);
      update({ Status: 'stashing diverged commits' }, true);
      for (const c of clashes) {
        const renamed = await receiver.stashBranch(c.receiverFsId);
        notes.push(`the receiving side's own branch ${c.branch} was renamed ${renamed}`);
      }
      receiverState = await receiver.state(ends.receiverName.namespace, ends.receiverName.name);
    }
    let history = wireHistory(senderState, fsId);
    let plan = this.#plan(ends, history, receiverState, fsId);
    if (plan.kind === 'stash-then-send') {
      update({ Status: 'stashing diverged commits' }, true);
      const stashed = await receiver.stash(fsId, plan.from);
      if (stashed !== '') notes.push(`the receiving side's diverged commits are kept on branch ${stashed}`);
      receiverState = await receiver.state(ends.receiverName.namespace, ends.receiverName.name);
      senderState = (await senderStateOf(ends)) ?? senderState;
      history = wireHistory(senderState, fsId);
      plan = this.#plan(ends, history, receiverState, fsId);
      if (plan.kind === 'stash-then-send') {
        throw new DotmeshError('CONFLICT', `${fmt(ends.receiverName)} changed while its diverged commits were stashed`, {
          hint: 'run the transfer again',
        });
      }
    }
    if (plan.kind === 'up-to-date') {
      await this.#ensureTargetBranch(ends, senderState, receiverState, fsId);
      update({ Index: 1, Total: 1, Size: 0, Sent: 0 }, true);
      return [...notes, 'remote already up-to-date, nothing to do'].join('; ');
    }
    const entries = plan.commits.map((c) => history.find((h) => h.id === c)!);
    phase.mark('states');
    update(
      {
        Status: ends.direction === 'push' ? 'pushing' : 'pulling',
        StartingCommit: plan.from ?? '',
        Total: Math.max(1, entries.length),
        Index: 0,
        Size: 0,
        Sent: 0,
      },
      true,
    );
    let sent = 0;
    // The size estimate (recorded transfers only) is worked out while the data already moves:
    // on the sender it walks every file of the commits (`du`), seconds for a dot of many files,
    // which the first byte must not wait for. Until it arrives `Size` is 0 ("not known yet");
    // then it is the estimate, never less than `Sent`; at the end, the bytes sent.
    let estimate: number | undefined;
    const shownSize = () => (estimate === undefined ? 0 : Math.max(estimate, sent));
    let streaming = true;
    if (ends.recorded) {
      void estimateSize(sender, entries).then((bytes) => {
        if (!streaming) return;
        estimate = bytes;
        update({ Size: shownSize() });
      });
    }
    try {
      for (const [i, e] of entries.entries()) {
        update({ Index: i + 1, TargetCommit: e.id }, true);
        const stream = await sender.exportCommit(e.fsId, e.id, e.parent);
        const before = sent;
        let lastByteAt = 0;
        try {
          await receiver.receiveCommit(this.#incoming(ends, senderState, e, fsId), stream, (bytes) => {
            sent = before + bytes;
            lastByteAt = performance.now();
            update({ Sent: sent, Size: shownSize() });
          });
        } finally {
          stream.close();
        }
        phase.mark('stream', lastByteAt);
        phase.mark('commit');
        this.#host.failpoints.hit('transfer.after-commit');
      }
    } finally {
      streaming = false;
    }
    await this.#ensureTargetBranch(ends, senderState, receiverState, fsId);
    update({ Index: entries.length, Sent: sent, Size: Math.max(estimate ?? 0, sent) }, true);
    this.#host.logger.info({ transfer: id, commits: entries.length, bytes: sent, ms: phase.totals() }, 'transfer timings');
    return [...notes, `sent ${entries.length} commit(s)`].join('; ');
  }

  #plan(ends: Ends, history: readonly HistoryEntry[], receiverState: WireDot | null, fsId: string): TransferPlan {
    const receiverHas = volumeOf(receiverState ?? EMPTY, fsId)
      ? wireHistory(receiverState!, fsId).map((h) => h.id)
      : heldPrefix(history, receiverState);
    return planTransfer({
      sender: history.map((h) => h.id),
      receiver: receiverHas,
      stashOnDivergence: ends.stash,
      senderName: `${fmt(ends.senderName)}@${ends.branch} (${ends.sender.label})`,
      receiverName: `${fmt(ends.receiverName)}@${ends.branch} (${ends.receiver.label})`,
    });
  }

  #incoming(ends: Ends, senderState: WireDot, e: HistoryEntry, targetFsId: string) {
    const v = volumeOf(senderState, e.fsId)!;
    return {
      volume: {
        dot: { id: senderState.id, namespace: ends.receiverName.namespace, name: ends.receiverName.name },
        fsId: v.fsId,
        branch: v.branch,
        origin: v.origin,
      },
      commitId: e.id,
      parent: e.parent,
      targetFsId,
    };
  }

  /** A branch without own commits to send still has to exist on the receiver. */
  async #ensureTargetBranch(ends: Ends, senderState: WireDot, receiverState: WireDot | null, fsId: string): Promise<void> {
    const v = volumeOf(senderState, fsId)!;
    if (v.branch === MASTER_BRANCH || volumeOf(receiverState ?? EMPTY, fsId)) return;
    await ends.receiver.ensureBranch({
      dot: { id: senderState.id, namespace: ends.receiverName.namespace, name: ends.receiverName.name },
      fsId,
      branch: v.branch,
      origin: v.origin,
    });
  }
}

const EMPTY: WireDot = { id: '', namespace: '', name: '', volumes: [] };

/** The sending side's state: its history is all the engine reads of it. */
/** The sender's estimate of the bytes of `entries` (0 for a commit it cannot estimate). */
async function estimateSize(sender: TransferSide, entries: readonly HistoryEntry[]): Promise<number> {
  let size = 0;
  for (const e of entries) size += await sender.predictSize(e.fsId, e.id, e.parent).catch(() => 0);
  return size;
}

function senderStateOf(ends: Ends): Promise<WireDot | null> {
  return ends.sender.state(ends.senderName.namespace, ends.senderName.name, { usage: false });
}

function fmt(n: { namespace: string; name: string }): string {
  return `${n.namespace}/${n.name}`;
}

/** The longest prefix of the sender's history the receiver already holds (null: none). */
function heldPrefix(history: readonly HistoryEntry[], receiver: WireDot | null): string[] | null {
  const out: string[] = [];
  for (const h of history) {
    if (!holds(receiver, h.fsId, h.id)) break;
    out.push(h.id);
  }
  return out.length > 0 ? out : null;
}

function senderBranch(state: WireDot, branch: string, name: { namespace: string; name: string }): string {
  const v = state.volumes.find((x) => x.branch === branch);
  if (!v) {
    throw new DotmeshError('BRANCH_NOT_FOUND', `Branch does not exist: ${branch} (in ${fmt(name)})`, {
      hint: `list branches with 'dm branch'`,
    });
  }
  return v.fsId;
}

interface BranchClash {
  readonly branch: string;
  readonly senderFsId: string;
  readonly receiverFsId: string;
}

/**
 * Branches on the transferred branch's path that exist on the receiver under the same name but
 * with another id: made independently on each side, they share no commit of their own.
 */
function branchClashes(sender: WireDot, receiver: WireDot | null, fsId: string): BranchClash[] {
  if (!receiver) return [];
  const path = new Set([fsId, ...wireHistory(sender, fsId).map((h) => h.fsId)]);
  const out: BranchClash[] = [];
  for (const id of path) {
    const v = volumeOf(sender, id);
    const other = v ? receiver.volumes.find((r) => r.branch === v.branch && r.fsId !== v.fsId) : undefined;
    if (v && other) out.push({ branch: v.branch, senderFsId: v.fsId, receiverFsId: other.fsId });
  }
  return out;
}

function refuseBranchClashes(clashes: readonly BranchClash[], receiverName: { namespace: string; name: string }): void {
  const c = clashes[0];
  if (!c) return;
  throw new DotmeshError(
    'DIVERGED',
    `branch ${c.branch} of ${fmt(receiverName)} was made independently on each side (ids ${c.senderFsId} and ${c.receiverFsId}): they have no commit in common after its origin`,
    {
      hint: `pass --stash-on-divergence to rename the receiving side's ${c.branch} to ${c.branch}-DIVERGED-<time> and complete the transfer`,
      data: { branch: c.branch, senderFsId: c.senderFsId, receiverFsId: c.receiverFsId },
    },
  );
}

/** The original's refusals for a receiving branch in use or with uncommitted changes. */
function checkReceiverWritable(state: WireDot | null, fsId: string, stash: boolean): void {
  const v = volumeOf(state ?? EMPTY, fsId);
  if (!v) return;
  if (v.containers.length > 0) throw activeContainersError(v.containers);
  if (v.dirtyBytes > 0 && !stash) {
    throw new DotmeshError(
      'CONFLICT',
      `Aborting because there are ${(v.dirtyBytes / 2 ** 20).toFixed(2)} MiB of uncommitted changes on volume where data would be written. Use 'dm reset' to roll back.`,
      { hint: 'or pass --stash-on-divergence to commit them and keep them on a -DIVERGED- branch' },
    );
  }
}

/** Network trouble and corrupt streams are worth another attempt; refusals are not. */
function retryable(e: unknown): boolean {
  if (!isDotmeshError(e)) return true;
  return e.code === 'UNAVAILABLE' || e.code === 'TRANSFER_CORRUPT' || e.code === 'INJECTED_FAULT';
}
