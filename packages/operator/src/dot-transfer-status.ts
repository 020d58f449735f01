import type { TransferPollResult } from '@dotmesh/rpc';
import type { DotTransferStatus, TransferErrorStatus } from './dot-resources.ts';
import { redact } from './dot-transfer-spec.ts';

/**
 * A DotTransfer's status from the server's record of its transfer (`GetTransfer`): the phase
 * (Running until the server says `finished` with every commit sent, or `error`), the progress in
 * commits and bytes, the retries (`retry N`: N attempts failed and another comes), and the
 * structured error (code, message, hint) of the last failure. Every text is redacted of `apiKey`
 * (the server never returns it; this holds even if a message quoted it).
 */
export function statusFromPoll(
  poll: TransferPollResult,
  base: Pick<DotTransferStatus, 'transferId' | 'node' | 'startTime'>,
  apiKey: string,
  now: Date,
): DotTransferStatus {
  const done = poll.Status === 'finished' && poll.Index === poll.Total;
  const failed = poll.Status === 'error';
  const retry = /^retry (\d+)$/.exec(poll.Status);
  const error = poll.Error
    ? redactError(
        { code: poll.Error.code, message: poll.Error.message, ...(poll.Error.hint ? { hint: poll.Error.hint } : {}) },
        apiKey,
      )
    : undefined;
  const failedAttempts = retry ? Number(retry[1]) : 0;
  return {
    ...base,
    phase: done ? 'Completed' : failed ? 'Failed' : 'Running',
    state: poll.Status,
    progress: `${poll.Index}/${poll.Total} commits, ${poll.Sent}/${poll.Size} bytes`,
    commitsSent: poll.Index,
    commitsTotal: poll.Total,
    bytesSent: poll.Sent,
    bytesTotal: poll.Size,
    retries: failedAttempts,
    ...(poll.Message ? { message: redact(poll.Message, apiKey) } : {}),
    ...(error && !done ? { error } : {}),
    ...(done || failed ? { completionTime: now.toISOString() } : {}),
  };
}

/** A transfer that ended before the server ran it (invalid spec, missing remote or Secret, refused call). */
export function failedStatus(error: TransferErrorStatus, apiKey: string, now: Date, startTime?: string): DotTransferStatus {
  const e = redactError(error, apiKey);
  return {
    phase: 'Failed',
    message: e.message,
    error: e,
    ...(startTime ? { startTime } : {}),
    completionTime: now.toISOString(),
  };
}

export function redactError(e: TransferErrorStatus, apiKey: string): TransferErrorStatus {
  return {
    code: e.code,
    message: redact(e.message, apiKey),
    ...(e.hint ? { hint: redact(e.hint, apiKey) } : {}),
  };
}

/** Whether the operator is done with a DotTransfer of this status. */
export function isFinished(status: DotTransferStatus | undefined): boolean {
  return status?.phase === 'Completed' || status?.phase === 'Failed';
}
