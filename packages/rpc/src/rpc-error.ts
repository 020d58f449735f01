import { type DotmeshError, type ErrorObject, errorFromObject } from '@dotmesh/core';

/**
 * How a DotmeshError travels in a JSON-RPC error, compatible with the original's clients:
 * `{"code":-32000,"message":<message>,"data":{"code":<error code>,"hint":<text|null>,"data":<object|null>}}`.
 * The message is the error's own (the original's text wherever it had one; its clients match
 * on it); `data` — `null` in the original — carries the rest, which those clients ignore.
 */
export interface RpcErrorData {
  readonly code: string;
  readonly hint: string | null;
  readonly data: Record<string, unknown> | null;
}

export function rpcErrorData(error: ErrorObject): RpcErrorData {
  return { code: error.code, hint: error.hint, data: error.data };
}

/**
 * A JSON-RPC error object back to the DotmeshError it carries: code, message (verbatim),
 * hint and data. Without our `data` (the original server, a framing error) it is INTERNAL
 * with the server's message; a code this version does not know is INTERNAL with
 * `data.unknownCode` (error-wire.ts).
 */
export function errorFromRpc(error: unknown): DotmeshError {
  const err = typeof error === 'object' && error !== null ? (error as Record<string, unknown>) : {};
  const data = typeof err.data === 'object' && err.data !== null ? (err.data as Record<string, unknown>) : {};
  return errorFromObject({ ...data, message: err.message }, { fallbackMessage: JSON.stringify(error) });
}
