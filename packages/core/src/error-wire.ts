import { DotmeshError, ERROR_CODES, type ErrorCode, isDotmeshError } from './errors.ts';

/**
 * A DotmeshError as plain JSON: the one shape an error has wherever it leaves a process —
 * inside a JSON-RPC error's `data` (without `message`, which is the JSON-RPC error's own), the
 * `/transfer/v1` peer endpoints, a transfer record's `Error`, and `dm --json`.
 *
 * Contract: `code` is an ErrorCode (a newer peer may send one this version does not know);
 * `hint` and `data` are null when absent. Rebuilding with `errorFromObject` gives back a
 * DotmeshError with the same code, message, hint and data, so a caller decides on the code
 * and the data, never on words in the message.
 */
export interface ErrorObject {
  readonly code: string;
  readonly message: string;
  readonly hint: string | null;
  readonly data: Record<string, unknown> | null;
}

/** The hint of an unexpected (non-Dotmesh) error that crossed a boundary. */
export const INTERNAL_ERROR_HINT = 'see the server log';

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/**
 * Any thrown value as an ErrorObject. A DotmeshError keeps its code, message, hint and data
 * (one rebuilt from a code this version does not know gets that code back, so passing an error
 * on changes nothing); anything else is a bug: INTERNAL, message `internal error: <its
 * message>`, hint INTERNAL_ERROR_HINT (its stack stays in the log of the process that threw it).
 */
export function errorObject(e: unknown): ErrorObject {
  if (isDotmeshError(e)) {
    const { unknownCode, ...rest } = e.data ?? {};
    if (e.code === 'INTERNAL' && typeof unknownCode === 'string') {
      return { code: unknownCode, message: e.message, hint: e.hint ?? null, data: Object.keys(rest).length > 0 ? rest : null };
    }
    return { code: e.code, message: e.message, hint: e.hint ?? null, data: e.data ?? null };
  }
  const detail = e instanceof Error ? e.message : String(e);
  return { code: 'INTERNAL', message: `internal error: ${detail}`, hint: INTERNAL_ERROR_HINT, data: null };
}

/**
 * Rebuilds the DotmeshError an ErrorObject describes (any JSON; missing or malformed fields
 * are tolerated). A code this version does not know becomes INTERNAL (exit status 1) with the
 * code as sent kept in `data.unknownCode`, message, hint and data unchanged. `prefix` goes
 * before the message (e.g. which peer answered).
 */
export function errorFromObject(raw: unknown, options: { prefix?: string; fallbackMessage?: string } = {}): DotmeshError {
  const o = isPlainObject(raw) ? raw : {};
  const message = typeof o.message === 'string' && o.message !== '' ? o.message : (options.fallbackMessage ?? 'unknown error');
  const sentData = isPlainObject(o.data) ? o.data : undefined;
  const known = isErrorCode(o.code);
  const data = known || typeof o.code !== 'string' ? sentData : { ...sentData, unknownCode: o.code };
  return new DotmeshError(known ? (o.code as ErrorCode) : 'INTERNAL', `${options.prefix ?? ''}${message}`, {
    ...(typeof o.hint === 'string' && o.hint !== '' ? { hint: o.hint } : {}),
    ...(data ? { data } : {}),
  });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
