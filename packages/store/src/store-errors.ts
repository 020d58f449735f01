import { DotmeshError, isDotmeshError } from '@dotmesh/core';

/**
 * The store's failures a caller acts on, the same from every Store implementation and
 * recognised by their code (never by the words of the message):
 * - LEASE_NOT_FOUND: a put, txn or keep-alive named a lease that expired, was revoked or
 *   never existed; nothing of the write was applied. `data.leaseId`.
 * - COMPACTED: a watch asked for history that was compacted away; read the current state with
 *   `range` and watch from its revision. `data.fromRevision` (and `data.compactedRevision`
 *   when the store knows it).
 * - UNAVAILABLE with `data.outcome: 'unknown'`: a write that may or may not have been applied
 *   (it timed out after it was sent); only reading the keys it wrote tells.
 */
export function leaseNotFound(leaseId: string): DotmeshError {
  return new DotmeshError('LEASE_NOT_FOUND', `lease not found: ${leaseId}`, {
    hint: 'the lease expired or was revoked; grant a new one and write the keys again',
    data: { leaseId },
  });
}

export const COMPACTED_HINT = 'read the current state with range and watch from its revision';

export function compactedHistory(fromRevision: number, compactedRevision?: number, cause?: unknown): DotmeshError {
  const what =
    compactedRevision === undefined ? 'that history was compacted' : `history up to revision ${compactedRevision} was compacted`;
  return new DotmeshError('COMPACTED', `watch from revision ${fromRevision}: ${what}`, {
    hint: COMPACTED_HINT,
    data: { fromRevision, ...(compactedRevision === undefined ? {} : { compactedRevision }) },
    ...(cause === undefined ? {} : { cause }),
  });
}

/** `error` (UNAVAILABLE, from a write) marked as one whose outcome is unknown: it may have been applied. */
export function outcomeUnknown(error: DotmeshError): DotmeshError {
  if (error.code !== 'UNAVAILABLE' || error.data?.outcome === 'unknown') return error;
  return new DotmeshError('UNAVAILABLE', error.message, {
    hint: `${error.hint ?? 'check the cluster store'}; the write may still have been applied`,
    data: { ...error.data, outcome: 'unknown' },
    cause: error.cause ?? error,
  });
}

/** A write that failed without telling whether it was applied (see `outcomeUnknown`). */
export function isOutcomeUnknown(e: unknown): boolean {
  return isDotmeshError(e) && e.code === 'UNAVAILABLE' && e.data?.outcome === 'unknown';
}
