import { DotmeshError } from '@dotmesh/core';

/**
 * The store's failures a caller acts on, the same from every Store implementation and
 * recognised by their code (never by the words of the message):
 * - LEASE_NOT_FOUND: a put, txn or keep-alive named a lease that expired, was revoked or
 *   never existed; nothing of the write was applied. `data.leaseId`.
 * - COMPACTED: a watch asked for history that was compacted away; read the current state with
 *   `range` and watch from its revision. `data.fromRevision` (and `data.compactedRevision`
 *   when the store knows it).
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
