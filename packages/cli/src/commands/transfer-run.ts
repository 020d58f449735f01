import { DotmeshError, deMasterify, errorFromObject, isDotmeshError } from '@dotmesh/core';
import type { CallParamsOf, TransferPollResult } from '@dotmesh/rpc';
import { setUpstream } from '../config.ts';
import type { CommandContext } from '../context.ts';
import {
  type DotRef,
  preamble,
  resolveTransfer,
  type TransferFlags,
  type TransferKind,
  type TransferPlan,
} from './transfer-args.ts';
import { createTransferProgress, type TransferProgress } from './transfer-progress.ts';

/**
 * Runs `dm push|pull|clone`: resolves the arguments (transfer-args.ts), prints the preamble,
 * asks the CURRENT remote (the initiator, which dials the peer) to start the transfer
 * (`Transfer`), then polls `GetTransfer` once a second until `Status` is `finished` with
 * `Index == Total` (success: the upstream is remembered if none was) or `error` (fails with
 * the record's error: its code, message, hint and data, so `dm` exits with the code's status;
 * see transferError; nothing is remembered). A poll that fails is retried; MAX_POLL_FAILURES
 * failures in a row end the command (the transfer itself goes on on the server). Loaded on
 * first use only (start-up time).
 */
export const POLL_INTERVAL_MS = 1000;
/** The original client's RPC timeout for GetTransfer. */
export const GET_TRANSFER_TIMEOUT_MS = 20_000;
export const MAX_POLL_FAILURES = 5;

export interface TransferOutcome {
  direction: 'push' | 'pull';
  peer: string;
  local: DotRef;
  remote: DotRef;
  transferId: string;
  /** The last GetTransfer result (without ApiKey). */
  result: Omit<TransferPollResult, 'ApiKey'>;
}

/**
 * The Transfer params: the original's 13 fields in its order (so a plain request is byte for
 * byte the original's), plus `PeerCertSha256` when known_servers pins the peer's certificate or
 * `PeerHttps` when it is verified by the CAs. Peer/User/Port/ApiKey are the peer remote's; a
 * Port of 0 is sent as 0 (the initiator deduces the URL, as the original server did).
 */
export async function transferRequest(ctx: CommandContext, plan: TransferPlan): Promise<CallParamsOf<'Transfer'>> {
  const peer = plan.peerRemote;
  const trust = (await ctx.knownServers()).get(peer.Hostname, peer.Port);
  const params = {
    Peer: peer.Hostname,
    User: peer.User,
    Port: peer.Port,
    ApiKey: peer.ApiKey,
    Direction: plan.direction,
    LocalNamespace: plan.local.namespace,
    LocalName: plan.local.name,
    LocalBranchName: deMasterify(plan.local.branch),
    RemoteNamespace: plan.remote.namespace,
    RemoteName: plan.remote.name,
    RemoteBranchName: deMasterify(plan.remote.branch),
    TargetCommit: '',
    StashDivergence: plan.stashDivergence,
    ...(trust?.kind === 'pin' ? { PeerCertSha256: trust.fingerprint } : {}),
    ...(trust?.kind === 'ca' ? { PeerHttps: true } : {}),
    ...(trust?.kind === 'cluster-ca' ? { PeerCaPin: trust.caPin } : {}),
  };
  // The optional fields are left out rather than sent empty: the server reads a missing
  // field as its zero value.
  return params as CallParamsOf<'Transfer'>;
}

/** Errors worth another poll: the server or the network may be back in a second. */
function transient(e: unknown): boolean {
  if (!isDotmeshError(e)) return true;
  return !['UNAUTHENTICATED', 'PERMISSION_DENIED', 'NOT_ADMIN', 'INVALID_ARGUMENT', 'UNKNOWN_METHOD'].includes(e.code);
}

/** Polls until the transfer ends; returns the final result or throws its error. */
export async function pollTransfer(
  ctx: CommandContext,
  transferId: string,
  progress: TransferProgress,
): Promise<TransferPollResult> {
  const client = await ctx.clientFor((await ctx.currentRemote()).remote);
  let failures = 0;
  for (;;) {
    await ctx.io.sleep(POLL_INTERVAL_MS);
    let poll: TransferPollResult;
    try {
      poll = await client.call('GetTransfer', transferId, { timeoutMs: GET_TRANSFER_TIMEOUT_MS });
    } catch (e) {
      failures++;
      const message = e instanceof Error ? e.message : String(e);
      if (!transient(e) || failures >= MAX_POLL_FAILURES) {
        throw new DotmeshError(isDotmeshError(e) ? e.code : 'INTERNAL', `cannot follow transfer ${transferId}: ${message}`, {
          hint: `the transfer may go on on the server; see its state with \`dm debug GetTransfer ${transferId}\``,
          cause: e,
        });
      }
      // As the original: a transfer not registered yet is no news worth printing.
      if (!(isDotmeshError(e) && e.code === 'DOT_NOT_FOUND')) progress.message(`Got error, trying again: ${message}`);
      continue;
    }
    failures = 0;
    progress.update(poll);
    if (poll.Status === 'finished' && poll.Index === poll.Total) return poll;
    if (poll.Status === 'error') throw transferError(poll);
  }
}

/**
 * The error a transfer ended with, rebuilt from its record: the server's `Error` (code,
 * message, hint, data) with `transferId` added to the data. A record without one (the
 * original server, or a record written before servers kept it) gives INTERNAL with `Message`.
 */
export function transferError(poll: TransferPollResult): DotmeshError {
  const fallback = poll.Message || `transfer ${poll.TransferRequestId} failed`;
  const e = poll.Error ? errorFromObject(poll.Error, { fallbackMessage: fallback }) : new DotmeshError('INTERNAL', fallback);
  return new DotmeshError(e.code, e.message, {
    ...(e.hint ? { hint: e.hint } : {}),
    data: { ...e.data, transferId: poll.TransferRequestId },
  });
}

export async function runTransfer(
  ctx: CommandContext,
  kind: TransferKind,
  args: readonly string[],
  flags: TransferFlags,
): Promise<TransferOutcome> {
  const plan = await resolveTransfer(ctx, kind, args, flags);
  ctx.reporter.notice(preamble(plan));
  const transferId = await ctx.call('Transfer', await transferRequest(ctx, plan));
  // Under --json stdout carries only the result: progress goes to stderr as plain lines.
  const progress = await createTransferProgress(
    ctx.options.json
      ? { line: (text) => ctx.io.stderr(`${text}\n`) }
      : { terminal: ctx.io.terminal, line: (text) => ctx.reporter.notice(text) },
  );
  let result: TransferPollResult;
  try {
    result = await pollTransfer(ctx, transferId, progress);
  } finally {
    progress.finish();
  }
  // Only a transfer that finished names an upstream: a failed clone leaves no dot to track.
  if (plan.rememberUpstream) {
    setUpstream(plan.peerRemote, plan.local.namespace, plan.local.name, {
      Namespace: plan.remote.namespace,
      Name: plan.remote.name,
    });
    await ctx.saveConfig();
  }
  const { ApiKey: _apiKey, ...shown } = result;
  return { direction: plan.direction, peer: plan.peer, local: plan.local, remote: plan.remote, transferId, result: shown };
}

export function renderTransfer(): string[] {
  return ['Done!'];
}
