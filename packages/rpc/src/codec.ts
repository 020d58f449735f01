/**
 * JSON-RPC 2.0 framing exactly as the original server (gorilla/rpc v2 json2) speaks it.
 *
 * Contracts:
 * - Request ids are echoed back with exactly the digits the client sent: the original `dm`
 *   uses 63-bit integer ids (e.g. 5577006791947779410) that a plain `JSON.parse` would round.
 *   We keep the id's raw JSON text (`idText`) from V8's JSON.parse source-text access.
 * - `idText === null` means a notification (no `id`, or `"id": null`, which Go decodes to a
 *   nil pointer): the original writes no response body for those, not even for errors.
 * - A response carries either `result` or `error`, never both (the Python SDK rejects both)
 *   and never a null/absent result (the Go client fails with "result is null").
 * - Method errors use code -32000 with HTTP 200; `data` is null unless the server adds
 *   structured data (ours: `{ code: <ErrorCode>, hint }`, an additive extension).
 */

/** The one JSON-RPC service of the API: methods are `DotmeshRPC.<Method>` on the wire. */
export const SERVICE = 'DotmeshRPC';
export const JSONRPC_VERSION = '2.0';
/** Invalid JSON. */
export const RPC_PARSE_ERROR = -32700;
/** Valid JSON but not a valid request object (e.g. jsonrpc is not "2.0"). */
export const RPC_INVALID_REQUEST = -32600;
/** Every method error, as in the original (clients match on the message text). */
export const RPC_SERVER_ERROR = -32000;

export type ParsedRpcRequest =
  | {
      readonly ok: true;
      /** Raw JSON text of the id, digit for digit; null for a notification. */
      readonly idText: string | null;
      readonly method: string;
      /** Plain JSON (numbers as JS numbers); undefined when the `params` key is absent. */
      readonly params: unknown;
    }
  | {
      readonly ok: false;
      readonly idText: string | null;
      readonly code: typeof RPC_PARSE_ERROR | typeof RPC_INVALID_REQUEST;
      readonly message: string;
    };

interface SourceContext {
  readonly source?: string;
}

/**
 * Parses one request body. Never throws. Batches (arrays) are not supported, as in the
 * original, and give an invalid-request error.
 */
export function parseRpcRequest(body: string): ParsedRpcRequest {
  // Raw text of every primitive `id` member, keyed by its holder object; after parsing we
  // keep only the root's. (The reviver runs bottom-up and cannot tell the root apart yet.)
  const idSources = new WeakMap<object, string>();
  let root: unknown;
  try {
    root = JSON.parse(body, function (this: unknown, key: string, value: unknown, context?: SourceContext) {
      if (key === 'id' && context?.source !== undefined && typeof this === 'object' && this !== null) {
        idSources.set(this, context.source);
      }
      return value;
    });
  } catch (e) {
    return { ok: false, idText: null, code: RPC_PARSE_ERROR, message: (e as Error).message };
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root)) {
    return { ok: false, idText: null, code: RPC_INVALID_REQUEST, message: 'request must be a JSON object' };
  }
  const req = root as Record<string, unknown>;
  let idText: string | null = null;
  const id = req.id;
  if (typeof id === 'number' || typeof id === 'string') {
    idText = idSources.get(req) ?? JSON.stringify(id);
  } else if (id !== undefined && id !== null) {
    return { ok: false, idText: null, code: RPC_INVALID_REQUEST, message: 'id must be a number, a string or null' };
  }
  if (req.jsonrpc !== JSONRPC_VERSION) {
    return { ok: false, idText, code: RPC_INVALID_REQUEST, message: `jsonrpc must be ${JSONRPC_VERSION}` };
  }
  if (typeof req.method !== 'string') {
    return { ok: false, idText, code: RPC_INVALID_REQUEST, message: 'method must be a string' };
  }
  return { ok: true, idText, method: req.method, params: req.params };
}

// A JSON number or string literal, or null: what parseRpcRequest can produce.
const ID_TEXT_PATTERN = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|"(?:[^"\\\u0000-\u001f]|\\.)*")$/;

function idJson(idText: string | null): string {
  if (idText === null) return 'null';
  if (!ID_TEXT_PATTERN.test(idText)) throw new Error(`rpc codec: idText is not a JSON number or string: ${idText}`);
  return idText;
}

/** `{"jsonrpc":"2.0","result":…,"id":…}`. A null/undefined result is a programmer error. */
export function rpcResultBody(idText: string | null, result: unknown): string {
  if (result === undefined || result === null) {
    throw new Error('rpc codec: a JSON-RPC result must not be null or undefined (clients fail with "result is null")');
  }
  return `{"jsonrpc":"2.0","result":${JSON.stringify(result)},"id":${idJson(idText)}}`;
}

/**
 * `{"jsonrpc":"2.0","error":{"code":-32000,"message":…,"data":…},"id":…}` with no result key.
 * `code` defaults to the server-error code; pass -32700/-32600 for framing errors.
 */
export function rpcErrorBody(
  idText: string | null,
  message: string,
  data: unknown = null,
  code: number = RPC_SERVER_ERROR,
): string {
  const error = { code, message, data: data === undefined ? null : data };
  return `{"jsonrpc":"2.0","error":${JSON.stringify(error)},"id":${idJson(idText)}}`;
}

/** A request body as the original client writes it (used by our client and tests). */
export function rpcRequestBody(idText: string, method: string, params: unknown): string {
  const paramsJson = params === undefined ? '' : `"params":${JSON.stringify(params)},`;
  return `{"jsonrpc":"2.0","method":${JSON.stringify(method)},${paramsJson}"id":${idJson(idText)}}`;
}
