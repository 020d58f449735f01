import { ERROR_CODES, isDotmeshError } from '@dotmesh/core';
import { status as Status } from '@grpc/grpc-js';

/** A failure with the gRPC code the CSI spec assigns to it. */
export class CsiError extends Error {
  readonly code: Status;

  constructor(code: Status, message: string) {
    super(message);
    this.name = 'CsiError';
    this.code = code;
  }
}

export const invalid = (message: string) => new CsiError(Status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new CsiError(Status.NOT_FOUND, message);

/**
 * The gRPC status of any failure: a CsiError keeps its code; a DotmeshError from the server
 * gets the gRPC code its error code maps to (core's table: DOT_NOT_FOUND → NOT_FOUND, IN_USE →
 * FAILED_PRECONDITION, UNAUTHENTICATED, ...), with `overrides` first (a call whose spec says
 * otherwise, e.g. CONFLICT → ALREADY_EXISTS for ControllerPublishVolume). Messages are the
 * server's or ours: neither ever holds a credential (the client's 401 message is fixed text).
 */
export function toGrpcStatus(e: unknown, overrides: Readonly<Record<string, Status>> = {}): { code: Status; details: string } {
  if (e instanceof CsiError) return { code: e.code, details: e.message };
  if (isDotmeshError(e)) {
    const code = overrides[e.code] ?? (ERROR_CODES[e.code]?.grpcStatus as Status | undefined) ?? Status.INTERNAL;
    return { code, details: e.hint ? `${e.message} (${e.hint})` : e.message };
  }
  return { code: Status.INTERNAL, details: `internal error: ${e instanceof Error ? e.message : String(e)}` };
}

/** Whether `e` is a DotmeshError with one of `codes`. */
export function isCode(e: unknown, ...codes: string[]): boolean {
  return isDotmeshError(e) && codes.includes(e.code);
}
