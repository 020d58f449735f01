import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Duplex, PassThrough } from 'node:stream';
import {
  type CommitOrigin,
  DotmeshError,
  ERROR_CODES,
  type ErrorObject,
  errorObject,
  isDotmeshError,
  isErrorCode,
  validateFsId,
  validateName,
} from '@dotmesh/core';
import { readBody } from '@dotmesh/rpc/http-body';
import { PIPELINE_HIGH_WATER_MARK } from '@dotmesh/storage';
import type { TransferCaller, TransferLogger } from './host.ts';
import { type IncomingCommit, parseIncomingCommit, parseIncomingVolume, parseOrigin } from './incoming.ts';
import { COMMIT_HEADER, PROTOCOL_PATH } from './peer-side.ts';
import type { TransferSide } from './side.ts';
import { KEEPALIVE_MS } from './stream-protocol.ts';

const MAX_JSON_BODY = 64 * 1024;

export interface PeerRoutesDeps<C extends TransferCaller> {
  /** Who is calling: Basic auth on the API port, the node certificate on the node endpoint. */
  readonly authenticate: (req: IncomingMessage) => Promise<C | null>;
  readonly logger: TransferLogger;
  /** This server as a transfer side acting for `caller`. */
  readonly sideFor: (caller: C) => TransferSide;
  /** A request that moves no byte for this long is dropped (its partial commit discarded). */
  readonly idleTimeoutMs: () => number;
  /**
   * On a cluster of several nodes: the node that must serve a request about these branches
   * (the master of `fsId`, else of the dot `dotId`), or undefined for this node; and how to pass
   * the request on there (transfer-proxy.ts). Absent: everything is served here.
   */
  readonly proxy?: TransferProxy<C>;
}

/** What a transfer request is about, for routing it to the node that serves it. */
export interface ProxyTarget {
  readonly fsId?: string | undefined;
  readonly dotId?: string | undefined;
  readonly dotName?: { namespace: string; name: string } | undefined;
}

/** Where a transfer request about a branch or dot is served, and passing it on. */
export interface TransferProxy<C extends TransferCaller> {
  target(about: ProxyTarget): string | undefined;
  /**
   * Passes the request on to `nodeId` for `caller` (the rest of the body still in `req`, or
   * the JSON body already read) and pipes the answer back.
   */
  forward(
    nodeId: string,
    o: {
      readonly op: string;
      readonly search: string;
      readonly req: IncomingMessage;
      readonly res: ServerResponse;
      readonly caller: C;
      readonly json?: Record<string, unknown>;
    },
  ): Promise<void>;
  /**
   * Passes an upgraded commit stream request (peer-streams.ts) on to `nodeId` for `caller`,
   * upgraded there too, and joins the two connections once it answered 101 (its refusal is
   * passed back as it is).
   */
  forwardUpgrade(
    nodeId: string,
    o: {
      readonly op: string;
      readonly search: string;
      readonly req: IncomingMessage;
      readonly socket: Duplex;
      readonly caller: C;
    },
  ): Promise<void>;
}

/**
 * The server-to-server transfer endpoints, `/transfer/v1/*` (protocol v1; a peer asks `hello`
 * first, so later versions can be added beside). All need Basic auth and act with that user's
 * rights, exactly as the same operations started locally. Errors are JSON
 * `{"error":{"code","message","hint","data"}}` with the code's HTTP status; a pushed commit
 * gets 200 at once and its outcome as the JSON after keep-alive spaces (the receiver may need
 * a while to make it durable, and the sender must not take that silence for a dead link).
 */
export function createPeerRoutes<C extends TransferCaller>(deps: PeerRoutesDeps<C>) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const op = url.pathname.slice(PROTOCOL_PATH.length + 1);
    const caller = await deps.authenticate(req);
    if (!caller) {
      res.writeHead(401, { 'content-type': 'text/plain' }).end('Unauthorized.\n');
      return;
    }
    req.socket.setTimeout(deps.idleTimeoutMs(), () => req.socket.destroy());
    const side = deps.sideFor(caller);
    const proxy = deps.proxy;
    const elsewhere = (about: ProxyTarget) => proxy?.target(about);
    try {
      if (req.method === 'GET' && op === 'hello') return sendJson(res, await side.hello());
      if (req.method === 'GET' && op === 'export') {
        const node = elsewhere({ fsId: url.searchParams.get('fsId') ?? undefined });
        if (node && proxy) return await proxy.forward(node, { op, search: url.search, req, res, caller });
        return await exportStream(side, url, res);
      }
      if (req.method !== 'POST') throw new DotmeshError('UNKNOWN_METHOD', `no transfer endpoint ${req.method} ${op}`);
      if (op === 'receive') {
        const node = proxy ? elsewhere(receivingBranch(req)) : undefined;
        if (node && proxy) return await proxy.forward(node, { op, search: url.search, req, res, caller });
        return await receive(side, req, res, deps.logger);
      }
      const body = await jsonBody(req);
      if (proxy) {
        const node = elsewhere(jsonAbout(op, body));
        if (node) return await proxy.forward(node, { op, search: url.search, req, res, caller, json: body });
      }
      switch (op) {
        case 'state':
          return sendJson(res, {
            dot: await side.state(validateName('namespace', body.namespace), validateName('dot', body.name)),
          });
        case 'predict':
          return sendJson(res, {
            bytes: await side.predictSize(
              validateFsId(body.fsId),
              validateName('commit', body.commitId),
              parseOrigin(body.parent, 'parent'),
            ),
          });
        case 'branch':
          await side.ensureBranch(parseIncomingVolume(body.volume));
          return sendJson(res, { ok: true });
        case 'stash': {
          const common = body.common === null ? null : validateName('commit', body.common);
          return sendJson(res, { branch: await side.stash(validateFsId(body.fsId), common) });
        }
        case 'stash-branch':
          return sendJson(res, { branch: await side.stashBranch(validateFsId(body.fsId)) });
        case 'commit-dirty':
          await side.commitDirty(validateFsId(body.fsId));
          return sendJson(res, { ok: true });
        default:
          throw new DotmeshError('UNKNOWN_METHOD', `no transfer endpoint POST ${op.slice(0, 100)}`);
      }
    } catch (e) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendError(res, e, deps.logger, op);
    }
  };
}

/** The branch a pushed commit goes to (its header), for routing; nothing when unreadable. */
function receivingBranch(req: IncomingMessage): ProxyTarget {
  try {
    const header = req.headers[COMMIT_HEADER];
    if (typeof header !== 'string' || header.length > 16 * 1024) return {};
    const raw = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as {
      targetFsId?: unknown;
      volume?: { dot?: { id?: unknown } };
    };
    return {
      fsId: typeof raw.targetFsId === 'string' ? raw.targetFsId : undefined,
      dotId: typeof raw.volume?.dot?.id === 'string' ? raw.volume.dot.id : undefined,
    };
  } catch {
    return {};
  }
}

/** The branch or dot a JSON transfer request is about, for routing. */
function jsonAbout(op: string, body: Record<string, unknown>): ProxyTarget {
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  if (op === 'state' && typeof body.namespace === 'string' && typeof body.name === 'string') {
    return { dotName: { namespace: body.namespace, name: body.name } };
  }
  if (op === 'branch') {
    const v = body.volume as { dot?: { id?: unknown } } | undefined;
    return { dotId: str(v?.dot?.id) };
  }
  return { fsId: str(body.fsId) };
}

/** The commit an export request names (and its parent), validated. */
export function exportParams(url: URL): { fsId: string; commitId: string; parent: CommitOrigin | null } {
  const q = url.searchParams;
  const parentFsId = q.get('parentFsId');
  const parent = parentFsId
    ? { fsId: validateFsId(parentFsId), commitId: validateName('commit', q.get('parentCommitId')) }
    : null;
  return { fsId: validateFsId(q.get('fsId')), commitId: validateName('commit', q.get('commitId')), parent };
}

async function exportStream(side: TransferSide, url: URL, res: ServerResponse): Promise<void> {
  const p = exportParams(url);
  const exported = await side.exportCommit(p.fsId, p.commitId, p.parent);
  const stream = exported.readable();
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  stream.on('error', () => res.destroy()); // the receiver sees a stream without its end frame
  res.on('close', () => exported.close());
  stream.pipe(res);
}

/** The description of a pushed commit, from its header. */
export function pushedCommit(req: IncomingMessage): IncomingCommit {
  const header = req.headers[COMMIT_HEADER];
  if (typeof header !== 'string' || header.length > 16 * 1024) {
    throw new DotmeshError('INVALID_ARGUMENT', `missing or oversized ${COMMIT_HEADER} header`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
  } catch {
    throw new DotmeshError('INVALID_ARGUMENT', `${COMMIT_HEADER} header is not base64url JSON`);
  }
  return parseIncomingCommit(raw);
}

async function receive(side: TransferSide, req: IncomingMessage, res: ServerResponse, logger: TransferLogger): Promise<void> {
  const commit = pushedCommit(req);
  let keepalive: NodeJS.Timeout | undefined;
  let done = false;
  req.once('end', () => {
    if (done || res.headersSent) return;
    // The whole stream is here; the receiver is making it durable: tell the sender it is alive.
    res.writeHead(200, { 'content-type': 'application/json' });
    keepalive = setInterval(() => {
      if (!res.writableEnded) res.write(' ');
    }, KEEPALIVE_MS);
  });
  try {
    // Through a PassThrough: a failing receive destroys its input, and this request must
    // survive that to carry the answer.
    const body = new PassThrough({ highWaterMark: PIPELINE_HIGH_WATER_MARK });
    req.pipe(body);
    // pipe() does not pass on a sender that vanished (idle timeout, reset): fail the stream.
    req.once('close', () => {
      if (!req.readableEnded) body.destroy(new DotmeshError('UNAVAILABLE', 'the sending server went away mid-stream'));
    });
    await side.receiveCommit(commit, { readable: () => body, close: () => body.destroy() }, () => {});
    done = true;
    finish(res, { ok: true });
  } catch (e) {
    done = true;
    if (!res.headersSent) throw e;
    finish(res, errorBody(e, logger, 'receive'));
  } finally {
    clearInterval(keepalive);
    // Not read to its end (a commit already here, a refusal, an end frame before the body's
    // end): drain the rest, so the sender reads the answer rather than a broken pipe.
    if (!req.readableEnded) {
      req.unpipe();
      req.resume();
    }
  }
}

function finish(res: ServerResponse, body: unknown): void {
  if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readBody(req, MAX_JSON_BODY);
  } catch {
    throw new DotmeshError('INVALID_ARGUMENT', `request body larger than ${MAX_JSON_BODY} bytes`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new DotmeshError('INVALID_ARGUMENT', 'request body is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new DotmeshError('INVALID_ARGUMENT', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

function sendJson(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** `{"error": ErrorObject}`: the peer rebuilds the same DotmeshError from it (peer-side.ts). */
export function errorBody(e: unknown, logger: TransferLogger, op: string): { error: ErrorObject } {
  if (isDotmeshError(e)) logger.info({ transferOp: op, code: e.code, msg: e.message }, 'transfer endpoint error');
  else logger.error({ transferOp: op, err: e }, 'transfer endpoint internal error');
  return { error: errorObject(e) };
}

function sendError(res: ServerResponse, e: unknown, logger: TransferLogger, op: string): void {
  const body = errorBody(e, logger, op);
  const status = isErrorCode(body.error.code) ? ERROR_CODES[body.error.code].httpStatus : 500;
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
