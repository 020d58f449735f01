import type { IncomingMessage } from 'node:http';
import {
  createPeerRoutes,
  createPeerStreams,
  type DataConnections,
  type PeerRoutesDeps,
  type TransferEngine,
  type TransferProxy,
} from '@dotmesh/transfer';
import { Authenticator } from '../auth/authenticator.ts';
import { pendingReplication } from '../cluster/replication-lag.ts';
import type { CallRouter } from '../cluster/router.ts';
import type { Caller } from '../dots/caller.ts';
import type { DotContext } from '../dots/context.ts';
import type { Logger } from '../log.ts';
import { createMetricsEndpoint } from '../metrics/endpoint.ts';
import { ServerMetrics } from '../metrics/metrics.ts';
import type { HandlerTable } from '../rpc/handlers.ts';
import { createDiffEndpoint } from './diff-endpoint.ts';
import { createRpcEndpoint, type RpcEndpointDeps } from './rpc-endpoint.ts';
import type { ApiRoutes } from './servers.ts';

/**
 * Every route of the API port with its dependencies: /rpc, GET /diff/…, GET /metrics, and the
 * per-response hook that feeds the metrics. One ServerMetrics (own registry) per server.
 */
export function createApiRoutes(deps: {
  readonly ctx: DotContext;
  readonly auth: Authenticator;
  readonly handlers: HandlerTable;
  readonly logger: Logger;
  readonly transfers: TransferEngine<Caller>;
  readonly idleTimeoutMs: () => number;
  /** Where calls run in a cluster of several nodes (absent: always here). */
  readonly router?: CallRouter;
  /** Where transfer requests about another node's branches go (absent: always here). */
  readonly transferProxy?: TransferProxy<Caller>;
  /** Serve commit streams on upgraded connections (@dotmesh/transfer peer-streams.ts). */
  readonly streamUpgrade: boolean;
  /** Pushes over HTTPS may take their stream on a data connection (@dotmesh/transfer data-connections.ts). */
  readonly dataConnections?: DataConnections;
}): ApiRoutes & { readonly rpcDeps: RpcEndpointDeps } {
  const { ctx, auth, handlers, logger } = deps;
  const metrics = new ServerMetrics(
    {
      poolInfo: () => ctx.storage.poolInfo(),
      counts: () => ({ dots: ctx.index.dots.size, branches: ctx.index.branches.size }),
      replicationLag: () => pendingReplication(ctx),
    },
    logger,
  );
  const rpcDeps: RpcEndpointDeps = {
    auth,
    handlers,
    logger,
    observe: (m, s, ok) => metrics.observeRpc(m, s, ok),
    ...(deps.router ? { router: deps.router } : {}),
  };
  const transferDeps: PeerRoutesDeps<Caller> = {
    authenticate: basicAuthenticator(auth),
    logger,
    sideFor: (caller) => deps.transfers.localSide(caller),
    idleTimeoutMs: deps.idleTimeoutMs,
    ...(deps.transferProxy ? { proxy: deps.transferProxy } : {}),
  };
  return {
    rpcDeps,
    rpc: createRpcEndpoint(rpcDeps),
    diff: createDiffEndpoint({ auth, ctx, logger }),
    metrics: createMetricsEndpoint(metrics, logger),
    transfer: createPeerRoutes(transferDeps),
    ...(deps.streamUpgrade
      ? {
          transferStreams: createPeerStreams({
            ...transferDeps,
            ...(deps.dataConnections ? { dataConnections: deps.dataConnections } : {}),
          }),
        }
      : {}),
    observe: (method, path, code, seconds) => metrics.observeHttp(method, path, code, seconds),
  };
}

/** Basic auth against the users, as every API endpoint (the peer's user and API key). */
function basicAuthenticator(auth: Authenticator): (req: IncomingMessage) => Promise<Caller | null> {
  return async (req) => {
    const basic = Authenticator.parseBasic(req.headers.authorization);
    return basic ? auth.authenticate(basic.user, basic.secret, req.socket.remoteAddress ?? '?') : null;
  };
}
