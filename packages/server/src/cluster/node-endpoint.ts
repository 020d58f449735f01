import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_CODES, isDotmeshError } from '@dotmesh/core';
import { readBody } from '@dotmesh/rpc/http-body';
import { PROTOCOL_PATH } from '@dotmesh/transfer';
import type { KnownUsers } from '../auth/known-users.ts';
import type { Caller } from '../dots/caller.ts';
import { handleRpcBody, MAX_RPC_BODY_BYTES, type RpcEndpointDeps } from '../http/rpc-endpoint.ts';
import type { Logger } from '../log.ts';
import { JOIN_PATH_PREFIX, type JoinIssuerDeps, serveJoin } from './join-issuer.ts';
import { peerNodeId } from './node-transport.ts';
import { CALLER_HEADER, decodeCaller, HOPS_HEADER, MAX_HOPS, NODE_RPC_PATH, STORE_REVISION_HEADER } from './router.ts';
import { NODE_TRANSFER_PATH } from './transfer-proxy.ts';
import type { ClusterView } from './view.ts';

export interface NodeEndpointDeps {
  readonly rpc: RpcEndpointDeps;
  /**
   * The transfer endpoints (`/transfer/v1/*`) for the other nodes: handoffs and replication
   * send commits through them, as the branch's master.
   */
  readonly transfer: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  /**
   * A push or pull from another cluster that reached another node of this one, passed on here
   * (transfer-proxy.ts): served as `caller`, with the `/transfer/v1` routes.
   */
  readonly forwardedTransfer: (req: IncomingMessage, res: ServerResponse, caller: Caller) => Promise<void>;
  /** Users as the request path reads them (the last record read while the store is unavailable). */
  readonly users: Pick<KnownUsers, 'byId'>;
  readonly view: ClusterView;
  readonly logger: Logger;
  /** Hosts joining the cluster (`/join/v1/*`, served without a client certificate); absent: none here. */
  readonly join?: JoinIssuerDeps;
}

/**
 * The routes of the node-to-node endpoint (behind mutual TLS, see node-transport.ts):
 * `POST /node/v1/rpc` runs a call another node passed on, as the caller that node
 * authenticated; `/transfer/v1/*` takes commits from the master of a branch; `/join/v1/*` lets
 * a host with a join token in (join-issuer.ts: the only routes served to a caller without a
 * node certificate). The calling node must be a live node of this cluster (its certificate's CN
 * names a node in `servers/addresses`), the caller a user that exists under that id and name,
 * and the hop count within bounds; anything else is refused before the call is read.
 */
export function createNodeEndpoint(deps: NodeEndpointDeps): RequestListener {
  return (req, res) => {
    void serve(deps, req, res).catch((err: unknown) => {
      // A DotmeshError before the call ran (the store unavailable while checking the caller):
      // its status and message, which the calling node passes on.
      if (isDotmeshError(err)) {
        deps.logger.warn({ err }, 'a node call failed before it ran');
        if (!res.headersSent) text(res, ERROR_CODES[err.code].httpStatus, err.fullMessage);
        return;
      }
      deps.logger.error({ err }, 'node endpoint failed');
      if (!res.headersSent) text(res, 500, 'internal error');
    });
  };
}

/** Why a call from another node is refused (HTTP status and text), or undefined. */
type Refusal = { readonly status: number; readonly text: string };

/** The calling node is a live node of this cluster (its certificate's CN names it). */
function refuseUnknownNode(deps: Pick<NodeEndpointDeps, 'view' | 'logger'>, req: IncomingMessage): Refusal | undefined {
  const peer = peerNodeId(req);
  if (peer && deps.view.node(peer)) return undefined;
  deps.logger.warn({ peer, remote: req.socket.remoteAddress }, 'refused a node call from an unknown node');
  return { status: 403, text: `unknown node ${peer ?? '(no certificate of this cluster)'}` };
}

/** The caller a forwarded call carries, with its hop count, checked against the users. */
async function forwardedCaller(
  deps: Pick<NodeEndpointDeps, 'users' | 'logger'>,
  req: IncomingMessage,
): Promise<{ caller: Caller; hops: number } | Refusal> {
  const caller = decodeCaller(req.headers[CALLER_HEADER]);
  const hops = Number(req.headers[HOPS_HEADER]);
  if (!caller || !Number.isInteger(hops) || hops < 1 || hops > MAX_HOPS + 1) {
    return { status: 400, text: 'a forwarded call needs a caller and a hop count' };
  }
  const user = await deps.users.byId(caller.id);
  if (!user || user.Name !== caller.name) {
    deps.logger.warn({ peer: peerNodeId(req), caller: caller.id }, 'refused a forwarded call for a user that does not exist');
    return { status: 403, text: `no user ${caller.name} with id ${caller.id}` };
  }
  return { caller, hops };
}

async function serve(deps: NodeEndpointDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if ((req.url ?? '').startsWith(JOIN_PATH_PREFIX)) {
    if (!deps.join) return text(res, 404, 'hosts do not join through this node');
    return serveJoin(deps.join, req, res);
  }
  const unknown = refuseUnknownNode(deps, req);
  if (unknown) return text(res, unknown.status, unknown.text);
  const url = req.url ?? '';
  if (url.startsWith(`${PROTOCOL_PATH}/`)) return deps.transfer(req, res);
  const forwardedTransfer = url.startsWith(`${NODE_TRANSFER_PATH}/`);
  if (!forwardedTransfer && (req.method !== 'POST' || url !== NODE_RPC_PATH)) {
    return text(res, 404, `no node route ${req.method} ${url.slice(0, 100)}`);
  }
  const forwarded = await forwardedCaller(deps, req);
  if ('status' in forwarded) return text(res, forwarded.status, forwarded.text);
  const { caller, hops } = forwarded;
  if (forwardedTransfer) {
    req.url = `${PROTOCOL_PATH}/${url.slice(NODE_TRANSFER_PATH.length + 1)}`;
    return deps.forwardedTransfer(req, res, caller);
  }
  let body: string;
  try {
    body = await readBody(req, MAX_RPC_BODY_BYTES);
  } catch {
    return text(res, 413, 'request body too large');
  }
  const reply = await handleRpcBody(deps.rpc, body, caller, hops);
  const revision = { [STORE_REVISION_HEADER]: String(deps.view.revision) };
  if (reply === null) {
    res.writeHead(204, revision).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', ...revision }).end(reply);
}

/**
 * The node endpoint's upgraded connections: a commit stream of a push or pull from another
 * cluster that reached another node of this one (transfer-proxy.ts forwardUpgrade), served as
 * its caller by `forwardedStreams`, with the checks of a forwarded call.
 */
export function createNodeUpgrades(
  deps: Pick<NodeEndpointDeps, 'users' | 'view' | 'logger'> & {
    readonly forwardedStreams: (req: IncomingMessage, socket: Duplex, head: Buffer, caller: Caller) => Promise<void>;
  },
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    socket.on('error', () => {});
    void (async () => {
      const unknown = refuseUnknownNode(deps, req);
      const url = req.url ?? '';
      const refusal: Refusal | undefined =
        unknown ??
        (url.startsWith(`${NODE_TRANSFER_PATH}/`) ? undefined : { status: 404, text: `no node upgrade ${url.slice(0, 100)}` });
      const forwarded = refusal ?? (await forwardedCaller(deps, req));
      if ('status' in forwarded) {
        socket.end(
          `HTTP/1.1 ${forwarded.status} Refused\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(forwarded.text)}\r\nconnection: close\r\n\r\n${forwarded.text}`,
        );
        return;
      }
      req.url = `${PROTOCOL_PATH}/${url.slice(NODE_TRANSFER_PATH.length + 1)}`;
      await deps.forwardedStreams(req, socket, head, forwarded.caller);
    })().catch((err: unknown) => {
      deps.logger.error({ err }, 'node endpoint upgrade failed');
      socket.destroy();
    });
  };
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${body}\n`);
}
