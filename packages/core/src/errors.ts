/**
 * The one error class for everything a user (or a peer) can cause.
 *
 * Contract: `code` is stable and machine-readable; `message` names the dot, branch,
 * commit or path involved (and, where the original Dotmesh had a fixed text, uses it
 * verbatim so its clients keep matching on it); `hint` says what to do next; `data` holds
 * what a program needs to act. Our own code never decides on the words of a message.
 * Programmer errors stay plain `Error`.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'INVALID_NAME'
  | 'INVALID_METADATA'
  | 'DOT_NOT_FOUND'
  | 'DOT_EXISTS'
  | 'BRANCH_NOT_FOUND'
  | 'BRANCH_EXISTS'
  | 'COMMIT_NOT_FOUND'
  | 'COMMIT_EXISTS'
  /** A node id that is not a live node of the cluster (data.node). */
  | 'NODE_NOT_FOUND'
  | 'IN_USE'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  | 'NOT_ADMIN'
  | 'POOL_FULL'
  | 'POOL_UNAVAILABLE'
  | 'INJECTED_FAULT'
  | 'UNKNOWN_METHOD'
  | 'UNSUPPORTED'
  | 'DIVERGED'
  | 'NOT_MASTER'
  | 'CONFLICT'
  | 'UNAVAILABLE'
  /**
   * A commit of a `sync` branch was made and kept on its master, but no other node confirmed
   * holding it in time (data.commitId, data.node, data.timeoutMs): it is not acknowledged.
   */
  | 'NOT_REPLICATED'
  /** A transfer stream failed its integrity checks (retried; a re-run resumes). */
  | 'TRANSFER_CORRUPT'
  /** The store: a lease that expired, was revoked or never existed (data.leaseId). */
  | 'LEASE_NOT_FOUND'
  /** The store: a watch from a revision whose history was compacted away (data.fromRevision). */
  | 'COMPACTED'
  | 'INTERNAL';

interface CodeInfo {
  /** Exit status of `dm` when a command fails with this code. */
  readonly exitCode: number;
  /** gRPC status (for the CSI driver) — numeric values of grpc.status. */
  readonly grpcStatus: number;
  /** HTTP status for non-RPC endpoints (the JSON-RPC endpoint always answers 200). */
  readonly httpStatus: number;
}

/**
 * One table maps each code to every outward representation. JSON-RPC errors always use
 * -32000 as the original server did (its clients match on the message text; ours read the
 * code from the error's data, see error-wire.ts), so only the CLI exit code, the gRPC status
 * and the plain-HTTP status vary.
 */
export const ERROR_CODES: Readonly<Record<ErrorCode, CodeInfo>> = {
  INVALID_ARGUMENT: { exitCode: 2, grpcStatus: 3, httpStatus: 400 },
  INVALID_NAME: { exitCode: 2, grpcStatus: 3, httpStatus: 400 },
  INVALID_METADATA: { exitCode: 2, grpcStatus: 3, httpStatus: 400 },
  DOT_NOT_FOUND: { exitCode: 3, grpcStatus: 5, httpStatus: 404 },
  DOT_EXISTS: { exitCode: 4, grpcStatus: 6, httpStatus: 409 },
  BRANCH_NOT_FOUND: { exitCode: 3, grpcStatus: 5, httpStatus: 404 },
  BRANCH_EXISTS: { exitCode: 4, grpcStatus: 6, httpStatus: 409 },
  COMMIT_NOT_FOUND: { exitCode: 3, grpcStatus: 5, httpStatus: 404 },
  COMMIT_EXISTS: { exitCode: 4, grpcStatus: 6, httpStatus: 409 },
  NODE_NOT_FOUND: { exitCode: 3, grpcStatus: 5, httpStatus: 404 },
  IN_USE: { exitCode: 5, grpcStatus: 9, httpStatus: 409 },
  PERMISSION_DENIED: { exitCode: 6, grpcStatus: 7, httpStatus: 403 },
  UNAUTHENTICATED: { exitCode: 6, grpcStatus: 16, httpStatus: 401 },
  NOT_ADMIN: { exitCode: 6, grpcStatus: 7, httpStatus: 403 },
  POOL_FULL: { exitCode: 7, grpcStatus: 8, httpStatus: 507 },
  POOL_UNAVAILABLE: { exitCode: 7, grpcStatus: 14, httpStatus: 503 },
  INJECTED_FAULT: { exitCode: 8, grpcStatus: 13, httpStatus: 500 },
  UNKNOWN_METHOD: { exitCode: 2, grpcStatus: 12, httpStatus: 404 },
  UNSUPPORTED: { exitCode: 2, grpcStatus: 12, httpStatus: 501 },
  DIVERGED: { exitCode: 9, grpcStatus: 9, httpStatus: 409 },
  NOT_MASTER: { exitCode: 9, grpcStatus: 9, httpStatus: 409 },
  CONFLICT: { exitCode: 9, grpcStatus: 10, httpStatus: 409 },
  UNAVAILABLE: { exitCode: 10, grpcStatus: 14, httpStatus: 503 },
  NOT_REPLICATED: { exitCode: 10, grpcStatus: 14, httpStatus: 503 },
  TRANSFER_CORRUPT: { exitCode: 10, grpcStatus: 15, httpStatus: 422 },
  LEASE_NOT_FOUND: { exitCode: 9, grpcStatus: 9, httpStatus: 409 },
  COMPACTED: { exitCode: 9, grpcStatus: 11, httpStatus: 410 },
  INTERNAL: { exitCode: 1, grpcStatus: 13, httpStatus: 500 },
};

export interface DotmeshErrorOptions {
  readonly hint?: string;
  /**
   * Structured data a caller can act on (e.g. a divergence's common commit). JSON values only:
   * it crosses every boundary as it is (error-wire.ts), so callers decide on it and on the code.
   */
  readonly data?: Record<string, unknown>;
  readonly cause?: unknown;
}

export class DotmeshError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly data: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: DotmeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DotmeshError';
    this.code = code;
    this.hint = options.hint;
    this.data = options.data;
  }

  /** The message with its hint, as shown to users. */
  get fullMessage(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

export function isDotmeshError(e: unknown): e is DotmeshError {
  return e instanceof DotmeshError;
}

export function exitCodeFor(e: unknown): number {
  return isDotmeshError(e) ? ERROR_CODES[e.code].exitCode : 1;
}
