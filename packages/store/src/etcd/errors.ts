import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import {
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  GRPCResourceExhastedError,
} from 'etcd3';
import { COMPACTED_HINT, leaseNotFound } from '../store-errors.ts';

/**
 * Maps what the etcd3 client throws to DotmeshError codes, by the client's error classes
 * (each stands for a gRPC status, or for one of etcd's fixed texts the client recognises
 * itself): connection trouble → UNAVAILABLE (naming the endpoints, with a hint), an unknown
 * lease → LEASE_NOT_FOUND, OUT_OF_RANGE → COMPACTED (etcd's answer to a revision compacted
 * away; the other OUT_OF_RANGE, a future revision, cannot happen: this store only asks for
 * revisions it has seen), a request etcd refuses (too large, too many operations, or no
 * resources left for it) → INVALID_ARGUMENT, etcd's permission refusal → PERMISSION_DENIED.
 * etcd's own transient answers (no leader, leader changed, request timed out, too many requests,
 * an unhealthy cluster) → UNAVAILABLE whatever class or gRPC code carries them: the request may
 * be retried once the cluster has a leader again. Anything else becomes INTERNAL with the etcd
 * message. This is the only place that interprets
 * etcd's errors.
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
    if (e instanceof EtcdLeaseInvalidError) return leaseNotFound(leases.join(', ') || 'unknown');
    if (ETCD_TRANSIENT.test(message)) return this.unavailable(message, e);
    if (e instanceof GRPCOutOfRangeError) {
      return new DotmeshError('COMPACTED', `etcd: ${message}`, { hint: COMPACTED_HINT, cause: e });
    }
    if (e instanceof GRPCInvalidArgumentError) {
      return new DotmeshError('INVALID_ARGUMENT', `etcd refused the request: ${message}`, {
        hint: 'run etcd with larger --max-txn-ops / --max-request-bytes, or write less at once',
        cause: e,
      });
    }
    if (e instanceof GRPCResourceExhastedError) {
      // A message above gRPC's size limit, or etcd out of space or overloaded.
      return new DotmeshError('INVALID_ARGUMENT', `etcd refused the request: ${message}`, {
        hint: 'write less at once; if etcd is out of space, compact and defragment it or raise its --quota-backend-bytes',
        cause: e,
      });
    }
    if (e instanceof EtcdPermissionDeniedError) {
      return new DotmeshError('PERMISSION_DENIED', `etcd refused the request: ${message}`, {
        hint: 'give the etcd user of this server read and write access to its key prefix',
        cause: e,
      });
    }
    if (isConnectionError(e)) return this.unavailable(message, e);
    return new DotmeshError('INTERNAL', `etcd: ${message}`, { cause: e });
  }
}

/**
 * etcd server texts that say "not now" rather than "no": quorum or leadership trouble, or load.
 * They arrive with gRPC UNAVAILABLE, RESOURCE_EXHAUSTED or none (a watch cancelled with a
 * reason), so they are recognised by text.
 */
const ETCD_TRANSIENT =
  /etcdserver: (no leader|leader changed|request timed out|too many requests|unhealthy cluster|server stopped|not capable|timed out waiting for read index)/;

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

/**
 * Connection trouble, by the client's error classes; failures below gRPC (a refused TCP
 * connection, a TLS handshake the CA or client certificate breaks) reach us as plain errors
 * from grpc-js/Node whose only signal is their text, so those are recognised here by it.
 */
function isConnectionError(e: Error): boolean {
  return (
    CONNECTION_ERRORS.has(e.name) ||
    CONNECTION_ERRORS.has(e.constructor.name) ||
    /UNAVAILABLE|DEADLINE_EXCEEDED|No connection established|connect|ECONNREFUSED|handshake|certificate|SSL|TLS|circuit/i.test(
      e.message,
    )
  );
}
