import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import { leaseNotFound } from '../engine/write-batch.ts';

/**
 * Maps what the etcd3 client throws to DotmeshError codes: connection trouble → UNAVAILABLE
 * (naming the endpoints, with a hint), an unknown lease → CONFLICT "lease not found", a
 * compacted revision → CONFLICT "compacted", a request etcd refuses as too large or too
 * long → INVALID_ARGUMENT. Anything else becomes INTERNAL with the etcd message.
 */
export class EtcdErrors {
  readonly #endpoints: readonly string[];

  constructor(endpoints: readonly string[]) {
    this.#endpoints = endpoints;
  }

  unavailable(detail: string, cause?: unknown): DotmeshError {
    return new DotmeshError('UNAVAILABLE', `etcd at ${this.#endpoints.join(', ')} is unavailable: ${detail}`, {
      hint:
        'check that etcd is running and reachable at these endpoints; if it requires client certificates, ' +
        'give the CA, certificate and key (--etcd-ca-file, --etcd-cert-file, --etcd-key-file)',
      data: { endpoints: [...this.#endpoints] },
      cause,
    });
  }

  /** `leases`: the lease ids the failed request used, for a "lease not found" answer. */
  map(error: unknown, leases: readonly string[] = []): DotmeshError {
    if (isDotmeshError(error)) return error;
    const e = error instanceof Error ? error : new Error(String(error));
    const message = e.message;
    if (/requested lease not found|lease not found/.test(message) || e.name === 'EtcdLeaseInvalidError') {
      return leaseNotFound(leases.join(', ') || 'unknown');
    }
    if (/compacted/.test(message)) {
      return new DotmeshError('CONFLICT', `etcd: required revision has been compacted (${message})`, {
        hint: 'read the current state with range and watch from its revision',
        cause: e,
      });
    }
    if (/too many operations in txn request|request is too large|message larger than max|duplicate key/.test(message)) {
      return new DotmeshError('INVALID_ARGUMENT', `etcd refused the request: ${message}`, {
        hint: 'run etcd with larger --max-txn-ops / --max-request-bytes, or write less at once',
        cause: e,
      });
    }
    if (isConnectionError(e)) return this.unavailable(message, e);
    return new DotmeshError('INTERNAL', `etcd: ${message}`, { cause: e });
  }
}

const CONNECTION_ERRORS = new Set([
  'GRPCUnavailableError',
  'GRPCDeadlineExceededError',
  'GRPCCancelledError',
  'GRPCUnauthenticatedError',
  'GRPCInternalError',
  'GRPCProtocolError',
  'GRPCGenericError',
  'GRPCUnknownError',
  'ClientClosedError',
  'BrokenCircuitError',
  'EtcdWatchStreamEnded',
]);

function isConnectionError(e: Error): boolean {
  return (
    CONNECTION_ERRORS.has(e.name) ||
    CONNECTION_ERRORS.has(e.constructor.name) ||
    /UNAVAILABLE|DEADLINE_EXCEEDED|No connection established|connect|ECONNREFUSED|handshake|certificate|SSL|TLS|circuit/i.test(
      e.message,
    )
  );
}
