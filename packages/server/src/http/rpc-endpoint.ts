import type { IncomingMessage, ServerResponse } from 'node:http';
import { DotmeshError, errorObject, isDotmeshError } from '@dotmesh/core';
import {
  decodeParams,
  METHODS,
  type MethodName,
  methodFromWire,
  parseRpcRequest,
  rpcErrorBody,
  rpcErrorData,
  rpcResultBody,
} from '@dotmesh/rpc';
import { readBody } from '@dotmesh/rpc/http-body';
import { Authenticator } from '../auth/authenticator.ts';
import type { CallRouter } from '../cluster/router.ts';
import { type Caller, requireAdmin } from '../dots/caller.ts';
import type { Logger } from '../log.ts';
import type { HandlerTable } from '../rpc/handlers.ts';

/** Request bodies above this are refused before parsing (the largest legit one is a commit with big metadata). */
export const MAX_RPC_BODY_BYTES = 32 * 1024 * 1024;

export interface RpcEndpointDeps {
  readonly auth: Authenticator;
  readonly handlers: HandlerTable;
  readonly logger: Logger;
  readonly observe?: (method: string, seconds: number, ok: boolean) => void;
  /** Where a call runs in a cluster; absent: always here (a single node). */
  readonly router?: CallRouter;
}

/**
 * POST /rpc exactly as the original (gorilla/rpc json2): 405 for other verbs, 415 for other
 * content types, 401 `Unauthorized.` without valid Basic auth, then HTTP 200 with either a
 * result or an error (code -32000), never both, never a null result; notifications get no
 * body. Error `data` carries the rest of the error (rpcErrorData): its stable code, hint and
 * structured data — an addition the original's clients ignore.
 */
export function createRpcEndpoint(deps: RpcEndpointDeps) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'POST') return plain(res, 405, `rpc: POST method required, received ${req.method ?? ''}`);
    const contentType = (req.headers['content-type'] ?? '').toLowerCase().replace(/\s+/g, '');
    if (!/^application\/json(;charset=utf-8)?$/.test(contentType)) {
      return plain(res, 415, `rpc: unrecognized Content-Type: ${req.headers['content-type'] ?? ''}`);
    }
    const basic = Authenticator.parseBasic(req.headers.authorization);
    const caller = basic ? await deps.auth.authenticate(basic.user, basic.secret, req.socket.remoteAddress ?? '?') : null;
    if (!caller) return plain(res, 401, 'Unauthorized.');
    let body: string;
    try {
      body = await readBody(req, MAX_RPC_BODY_BYTES);
    } catch {
      return plain(res, 413, `rpc: request body larger than ${MAX_RPC_BODY_BYTES} bytes`);
    }
    const reply = await handleRpcBody(deps, body, caller, 0);
    if (reply === null) {
      res.writeHead(204).end();
      return;
    }
    json(res, reply);
  };
}

/**
 * One JSON-RPC request body for an authenticated caller (from a client, or passed on by another
 * node after `hops` hops): run here, or passed on to the node the method table's route names.
 * Returns the reply body, or null for a notification.
 */
export async function handleRpcBody(deps: RpcEndpointDeps, body: string, caller: Caller, hops: number): Promise<string | null> {
  const parsed = parseRpcRequest(body);
  if (!parsed.ok) return rpcErrorBody(parsed.idText, parsed.message, null, parsed.code);
  const started = process.hrtime.bigint();
  const method = methodFromWire(parsed.method);
  let reply: string;
  let ok = true;
  try {
    if (method === null) throw new DotmeshError('UNKNOWN_METHOD', `rpc: can't find method "${parsed.method.slice(0, 200)}"`);
    const params = checkAndDecode(method, caller, parsed.params);
    const target = deps.router?.target(method, params);
    if (target !== undefined) {
      reply = await deps.router!.forward(target, body, caller, hops + 1);
    } else {
      const handler = deps.handlers[method] as (c: Caller, p: unknown) => Promise<unknown>;
      reply = rpcResultBody(parsed.idText, await handler(caller, params));
    }
  } catch (e) {
    ok = false;
    reply = errorReply(parsed.idText, e, deps.logger, parsed.method);
  }
  deps.observe?.(method ?? 'unknown', Number(process.hrtime.bigint() - started) / 1e9, ok);
  return parsed.idText === null ? null : reply;
}

/** The method table's checks of the caller, then the params decoded Go-style. */
function checkAndDecode(method: MethodName, caller: Caller, raw: unknown): unknown {
  const spec = METHODS[method] as { admin: boolean; passwordAuth?: boolean };
  if (spec.admin) requireAdmin(caller);
  if (spec.passwordAuth && caller.authMethod !== 'password') {
    throw new DotmeshError('PERMISSION_DENIED', 'Password authentication is required for this method.');
  }
  return decodeParams(method, raw);
}

function errorReply(idText: string | null, e: unknown, logger: Logger, method: string): string {
  if (isDotmeshError(e)) logger.info({ method, code: e.code, msg: e.message }, 'rpc error');
  else logger.error({ method, err: e }, 'rpc internal error');
  const error = errorObject(e);
  return rpcErrorBody(idText, error.message, rpcErrorData(error));
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }).end(`${text}\n`);
}

function json(res: ServerResponse, body: string): void {
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'X-Content-Type-Options': 'nosniff' }).end(body);
}
