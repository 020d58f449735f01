import { randomUUID, X509Certificate } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { basename, join } from 'node:path';
import { ADMIN_USER_ID, DotmeshError, formatVolumeName, parseVolumeName } from '@dotmesh/core';
import { errorFromRpc } from '@dotmesh/rpc';
import { FLEX_SOCKET_FILE } from '@dotmesh/rpc/flexvolume';
import type { StorageDriver } from '@dotmesh/storage';
import type { Store } from '@dotmesh/store';
import {
  createPeerRoutes,
  createPeerStreams,
  DataConnections,
  DEFAULT_TRANSFER_TIMING,
  type PeerRoutesDeps,
  TransferEngine,
  TransferRecords,
  type TransferTiming,
} from '@dotmesh/transfer';
import { Authenticator } from './auth/authenticator.ts';
import { KnownUsers } from './auth/known-users.ts';
import { type InitialAdminCredentials, UserService } from './auth/users.ts';
import { BranchAdvertiser } from './cluster/branch-advertiser.ts';
import { standDown } from './cluster/come-back.ts';
import { DurabilitySettings } from './cluster/durability.ts';
import { DEFAULT_FAILOVER_SWEEP_MS, Failover } from './cluster/failover.ts';
import { BranchFence, leadMsFor } from './cluster/fence.ts';
import { activateBranch, followMastership, type HandoffDeps } from './cluster/handoff.ts';
import type { JoinIssuerDeps } from './cluster/join-issuer.ts';
import { JoinTokens } from './cluster/join-tokens.ts';
import { MasterNodes } from './cluster/master-nodes.ts';
import { createNodeEndpoint, createNodeUpgrades } from './cluster/node-endpoint.ts';
import { DEFAULT_NODE_LEASE, NodeLease } from './cluster/node-lease.ts';
import { sendBranchToNode } from './cluster/node-send.ts';
import { createNodeServer, NodeClient, type NodeTls, peerNodeId } from './cluster/node-transport.ts';
import { PeerTransfers } from './cluster/peer-transfers.ts';
import { PinnedBranches } from './cluster/pinned.ts';
import { announceRestart, clearRestart, pendingRestart } from './cluster/planned-restart.ts';
import { advertisePresence, type Presence, refuseClash } from './cluster/presence.ts';
import { BranchPublications } from './cluster/publications.ts';
import { DEFAULT_REPLICATION, type ReplicationSettings, Replicator } from './cluster/replicator.ts';
import { CallRouter } from './cluster/router.ts';
import { StoreHealth } from './cluster/store-health.ts';
import type { SyncCommitDeps } from './cluster/sync-commit.ts';
import { followTombstones } from './cluster/tombstones.ts';
import { ClusterTransferProxy } from './cluster/transfer-proxy.ts';
import { ClusterView } from './cluster/view.ts';
import { KeyedQueue } from './concurrency/keyed-queue.ts';
import { KeyedRwLock } from './concurrency/rw-lock.ts';
import { DockerodeEngineClient, type EngineClient } from './docker/engine-client.ts';
import { PluginSocketServer } from './docker/plugin-server.ts';
import { DockerContainerTracker } from './docker/tracker.ts';
import { VolumePlugin } from './docker/volume-plugin.ts';
import type { Caller } from './dots/caller.ts';
import { DotCatalog } from './dots/catalog.ts';
import { pruneContainerLinks } from './dots/container-links.ts';
import { type ContainerTracker, NO_CONTAINERS } from './dots/containers.ts';
import type { DotContext } from './dots/context.ts';
import { DotIndex } from './dots/dot-index.ts';
import { type InUseChecker, NEVER_IN_USE } from './dots/in-use.ts';
import { DotEvents } from './dots/mutation/events.ts';
import { DotMutations } from './dots/mutation/mutations.ts';
import { ContainerPaths } from './dots/procure.ts';
import { reconcileFromPool } from './dots/reconcile.ts';
import { publishOwnKeys } from './dots/reconcile-store.ts';
import { SizeTracker } from './dots/sizes.ts';
import type { EtcdMemberControl } from './etcd/member-control.ts';
import { Failpoints } from './failpoints.ts';
import { flexDriverDir, installFlexDriver } from './flexvolume/install.ts';
import { FlexMounts, type FlexMountsDeps, removedByKubelet } from './flexvolume/mounts.ts';
import { FlexSocketServer } from './flexvolume/socket-server.ts';
import { createApiRoutes } from './http/api-routes.ts';
import { createApiServer, createCheckServer, listen } from './http/servers.ts';
import type { Logger } from './log.ts';
import { ALWAYS_WRITABLE, type WriteGuard } from './pool/host-space-guard.ts';
import type { PoolControl } from './pool/pool-grow.ts';
import { createHandlers, dumpIndex, type HandlerTable } from './rpc/handlers.ts';
import { ownerForNewDot } from './rpc/user-handlers.ts';
import { DATA_HANDSHAKE_TIMEOUT_MS, dataConnectionRoute, FIRST_RECORD_TIMEOUT_MS } from './tls/data-connection-route.ts';
import { createHttpsApiServer, listenTls, type TlsMaterial } from './tls/https-server.ts';
import { caPublicKeyHash } from './tls/pki.ts';
import { createSharedTlsPort } from './tls/shared-tls-port.ts';
import { transferHost } from './transfer/host.ts';
import { SERVER_VERSION } from './version.ts';

/**
 * The composition root of dotmesh-server, free of process-level concerns (config files,
 * pool devices, signals: see main.ts), so tests can run a whole server in-process on any
 * driver and store. Nothing here reads process.env.
 */
export interface ServerParts {
  readonly driver: StorageDriver;
  readonly store: Store;
  readonly logger: Logger;
  /** This node's id: the pool's id, as the original. */
  readonly nodeId: string;
  /** Where the stable per-dot symlinks live (the original's CONTAINER_MOUNT_PREFIX). */
  readonly containerMountDir: string;
  readonly initialAdmin?: InitialAdminCredentials;
  readonly listenHost: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly checkPort?: number;
  /** Also serve the API over HTTPS on this port (0 picks a free one) with this certificate. */
  readonly tls?: { readonly port: number; readonly material: TlsMaterial };
  /** Tracks containers over this Docker engine (overrides `containers`) and serves the volume plugin. */
  readonly docker?: DockerParts;
  readonly containers?: ContainerTracker;
  readonly inUse?: InUseChecker;
  readonly writeGuard?: WriteGuard;
  /**
   * Install the FlexVolume driver `dotmesh.io/dm` (the executable `driverBinary`) into the
   * kubelet's plugin directory `dir` and serve its socket there; absent: no FlexVolume driver.
   */
  readonly flexVolume?: { readonly dir: string; readonly driverBinary: string };
  /** The pool device (GrowPool, PoolInfo's file size); absent: the pool cannot grow. */
  readonly pool?: PoolControl;
  readonly now?: () => Date;
  readonly newId?: () => string;
  readonly crash?: () => never;
  /**
   * One node among several (absent: a single node): the node-to-node endpoint on this port
   * (0 picks a free one) with this node's certificate of the cluster CA, and the addresses the
   * other nodes reach it at.
   */
  readonly cluster?: {
    readonly port: number;
    readonly addresses: readonly string[];
    readonly tls: NodeTls;
    /** Signing hosts' certificates when they join (join-issuer.ts); absent: no host joins here. */
    readonly join?: Pick<JoinIssuerDeps, 'canSign' | 'sign' | 'etcd'>;
  };
  /** The managed etcd's members (RemoveEtcdMember); absent: the store's etcd is not Dotmesh's. */
  readonly etcdMembers?: EtcdMemberControl;
  /** This node's lease in the store (DEFAULT_NODE_LEASE when absent). */
  readonly nodeLease?: { readonly ttlSeconds: number; readonly marginMs: number };
  /** Transfer idle timeout, attempts and backoff (DEFAULT_TRANSFER_TIMING when absent). */
  readonly transferTiming?: TransferTiming;
  /** Background replication of commits to the other nodes (DEFAULT_REPLICATION when absent; a cluster of several only). */
  readonly replication?: ReplicationSettings;
  /**
   * false: commit streams only as plain HTTP bodies, neither offered in hello nor served on
   * upgraded connections — what servers before the upgraded streams speak (tests of the
   * fallback). Default true.
   */
  readonly transferStreamUpgrade?: boolean;
  /**
   * false: pushes over HTTPS keep their stream on the upgraded connection (Node ends TLS),
   * neither asked for nor offered a data connection of the pumps' own. Default true.
   */
  readonly transferDataConnections?: boolean;
  /**
   * Automatic failover of the branches of a node that is gone (a cluster of several only):
   * enabled (default true) and the sweep's period (default DEFAULT_FAILOVER_SWEEP_MS).
   */
  readonly failover?: { readonly enabled: boolean; readonly sweepMs: number };
  /**
   * A cluster node's close() announces a planned restart for this many seconds
   * (planned-restart.ts): failover leaves its branches for that long. 0 or absent: none.
   */
  readonly restartGraceSeconds?: number;
  /** false: close() leaves the driver and store open (tests that restart on the same ones). */
  readonly closeStorage?: boolean;
}

export interface DockerParts {
  /** The Engine API's unix socket (containers are listed, stopped and started there). */
  readonly engineSocket: string;
  /** Where to serve the volume plugin (`<dir>/<driver>.sock`); null: no plugin. */
  readonly pluginSocket: string | null;
  /** The Dotmesh user the plugin acts as. */
  readonly pluginUser: string;
  /** The volume driver name containers use; default: the plugin socket's name, else `dm`. */
  readonly driverName?: string;
  /** Another Engine API client (tests); default: dockerode on engineSocket. */
  readonly engine?: EngineClient;
}

export interface RunningServer {
  readonly port: number;
  readonly checkPort: number | undefined;
  /** The node-to-node endpoint's port, when serving one. */
  readonly clusterPort: number | undefined;
  readonly view: ClusterView;
  /** The HTTPS API port, when serving one. */
  readonly tlsPort: number | undefined;
  /** Commit streams waiting for, and taken on, data connections of the TLS port (when offered). */
  readonly dataConnections: DataConnections | undefined;
  readonly ctx: DotContext;
  readonly handlers: HandlerTable;
  readonly transfers: TransferEngine<Caller>;
  readonly recovery: readonly string[];
  /** The Docker volume plugin, when one is served. */
  readonly plugin: VolumePlugin | undefined;
  close(): Promise<void>;
}

export async function startServer(parts: ServerParts): Promise<RunningServer> {
  const { driver, logger } = parts;
  const store = new StoreHealth(parts.store, { logger });
  // A copy of this pool already live elsewhere: refused before anything touches the store.
  if (parts.cluster) {
    await refuseClash(store, { nodeId: parts.nodeId, addresses: parts.cluster.addresses, clusterPort: parts.cluster.port });
  }
  const opened = await driver.open();
  for (const action of opened.actions) logger.info({ recovery: true }, `storage: ${action}`);

  const users = new UserService(store);
  const cleared = await users.removeClearApiKeys();
  if (cleared > 0) {
    logger.warn(
      { users: cleared },
      'replaced API keys an earlier version stored in clear by verifiers: they keep working, GetApiKey cannot show them (ResetApiKey issues new ones); the store history may hold the old values until compacted',
    );
  }
  const admin = await users.ensureAdmin(parts.initialAdmin);
  if (admin === 'created') logger.info({ admin }, 'created the admin user from the initial credentials');
  if (admin === 'replaced') logger.warn({ admin }, "replaced the admin user's password and API key (new admin credentials)");
  if (admin === 'ignored')
    logger.info({ admin }, 'kept the admin user of the store; the initial credentials only seed a store without one');

  const index = new DotIndex();
  const paths = new ContainerPaths(parts.containerMountDir);
  const tracker = parts.docker
    ? new DockerContainerTracker({
        engine: parts.docker.engine ?? new DockerodeEngineClient(parts.docker.engineSocket),
        driverName: parts.docker.driverName ?? (parts.docker.pluginSocket ? basename(parts.docker.pluginSocket, '.sock') : 'dm'),
        paths,
        fsIdAt: (path) => [...index.branches.keys()].find((fsId) => driver.volumePath(fsId) === path),
        logger,
      })
    : undefined;
  const masterNodes = new MasterNodes(parts.nodeId);
  const leaseOptions = parts.nodeLease ?? DEFAULT_NODE_LEASE;
  const lease = await NodeLease.grant(store, { ...leaseOptions, logger });
  const failpoints = new Failpoints(parts.crash);
  const writeGuard = parts.writeGuard ?? ALWAYS_WRITABLE;
  const newId = parts.newId ?? randomUUID;
  const now = parts.now ?? (() => new Date());
  const fence = new BranchFence({ driver, index, masterNodes, lease, logger, now, leadMs: leadMsFor(leaseOptions) });
  const locks = new KeyedRwLock();
  const mutations = new DotMutations({
    driver,
    index,
    store,
    masterNodes,
    lease,
    failpoints,
    logger,
    events: new DotEvents(),
    locks,
    queues: new KeyedQueue(),
    writeGuard,
    newId,
    storeHealth: store,
    fence,
  });
  const view = new ClusterView(store, masterNodes, logger);
  const ctx: DotContext = {
    storage: driver,
    index,
    view,
    mutations,
    masterNodes,
    failpoints,
    logger,
    locks,
    containerMoves: new KeyedQueue(),
    containers: tracker ?? parts.containers ?? NO_CONTAINERS,
    publications: new BranchPublications(store, view, masterNodes),
    inUse: parts.inUse ?? NEVER_IN_USE,
    writeGuard,
    nodeId: parts.nodeId,
    now,
    newId,
  };
  const report = await reconcileFromPool(ctx, store);
  // A lease found gone (this node was cut off from the store for longer than its TTL): a new
  // one, and this node's keys again under it. Mutations are refused meanwhile (the fence).
  let presence: Presence | undefined;
  lease.onLost(() => {
    void (async () => {
      await lease.renew();
      if (presence) await advertisePresence(store, lease.id, presence);
      await publishOwnKeys(ctx, store, parts.nodeId);
      logger.info({ lease: lease.id }, 'a new lease; this node’s keys are advertised again');
    })().catch((err: unknown) => logger.error({ err }, 'could not renew this node’s lease'));
  });
  logger.info(
    { dots: index.dots.size, branches: index.branches.size, changes: report.actions.length },
    'index rebuilt from the pool',
  );
  await view.start();
  // Never two writers: a copy another node masters now is read-only before anything is served.
  await fence.atStart();
  mutations.followView(view);
  const unfollowTombstones = followTombstones(ctx, view);
  const staleLinks = await pruneContainerLinks(ctx, paths);
  if (staleLinks.length > 0) logger.info({ links: staleLinks.map((l) => l.path) }, 'removed container_mnt links no dot owns');

  const knownUsers = new KnownUsers(users, { storeAvailable: () => store.available, logger });
  const auth = new Authenticator(knownUsers);
  const records = new TransferRecords(store, logger, parts.nodeId);
  await records.load();
  const timing = parts.transferTiming ?? DEFAULT_TRANSFER_TIMING;
  const streamUpgrade = parts.transferStreamUpgrade !== false;
  const dataConnectionsOn = streamUpgrade && parts.transferDataConnections !== false;
  const transfers = new TransferEngine(
    transferHost(ctx, { ownerOf: (caller, ns) => ownerForNewDot(users, caller, ns) }),
    records,
    { timing: () => timing, streamUpgrade, dataConnections: dataConnectionsOn && driver.exportCommitTo !== undefined },
  );
  const dataConnections =
    dataConnectionsOn && parts.tls && driver.importCommitFrom
      ? new DataConnections({
          identity: { certFile: parts.tls.material.chainFile, keyFile: parts.tls.material.keyFile },
          handshakeTimeoutMs: DATA_HANDSHAKE_TIMEOUT_MS,
        })
      : undefined;
  const sizes = new SizeTracker(driver);
  const nodeClient = parts.cluster ? new NodeClient(view, parts.cluster.tls) : undefined;
  const router = nodeClient ? new CallRouter(view, masterNodes, nodeClient, (fsId) => index.branches.has(fsId)) : undefined;
  const cluster = parts.cluster;
  const replication = parts.replication ?? DEFAULT_REPLICATION;
  const peers = cluster ? new PeerTransfers(view, logger) : undefined;
  const replicator =
    cluster && peers
      ? new Replicator({
          ctx,
          send: (dotId, fsId, to) =>
            sendBranchToNode(
              { view, transfers, tls: cluster.tls, idleTimeoutMs: () => timing.idleTimeoutMs, peers },
              dotId,
              fsId,
              to,
            ),
          settings: replication,
        })
      : undefined;
  const durability = new DurabilitySettings(store, view, parts.nodeId, replicator !== undefined && replication.enabled);
  const syncCommit: SyncCommitDeps = {
    nodeId: parts.nodeId,
    view,
    send: (dotId, fsId, to) =>
      replicator
        ? replicator.sendNow(dotId, fsId, to)
        : Promise.reject(new DotmeshError('UNSUPPORTED', 'this server is a single node: it sends commits to no other node')),
    timeoutMs: replication.syncCommitTimeoutMs,
  };
  const handoff: HandoffDeps | undefined = replicator
    ? { ctx, send: (dotId, fsId, to) => replicator.sendNow(dotId, fsId, to) }
    : undefined;
  const takeOver = router ? takeOverVia(router, ctx) : undefined;
  const plugin = parts.docker?.pluginSocket
    ? new VolumePlugin({
        ctx,
        paths,
        caller: pluginCaller(users, parts.docker.pluginUser),
        ownerOf: (caller, ns) => ownerForNewDot(users, caller, ns),
        ...(takeOver ? { takeOver } : {}),
      })
    : undefined;
  const unfollowMastership = followMastership(ctx);
  fence.start({ caughtUp: () => view.caughtUpWithStore(), lost: (fsId) => standDown(ctx, fsId) });
  const failover = cluster
    ? new Failover(ctx, {
        enabled: parts.failover?.enabled ?? true,
        sweepMs: parts.failover?.sweepMs ?? DEFAULT_FAILOVER_SWEEP_MS,
        absentGraceMs: leaseOptions.ttlSeconds * 1000,
        restartPending: async (nodeId) => (await pendingRestart(store, nodeId)) !== undefined,
      })
    : undefined;
  const pinned = new PinnedBranches(store, view);
  const joinTokens = new JoinTokens(store, parts.now);
  let clusterPort: number | undefined;
  const handlers = createHandlers({
    ctx,
    sizes,
    users,
    auth,
    paths,
    version: SERVER_VERSION,
    internalState: () => ({
      ...dumpIndex(ctx),
      ...dockerMountsState(plugin),
      ...replicator?.state(),
      ...fence.state(),
      ...failover?.state(),
      ...peers?.state(),
    }),
    store,
    transfers,
    catalog: new DotCatalog(view, index, masterNodes),
    durability,
    pinned,
    syncCommit,
    view,
    ...(handoff ? { handoff } : {}),
    ...(takeOver ? { takeOver } : {}),
    ...(parts.pool ? { pool: parts.pool } : {}),
    joinTokens,
    ...(parts.etcdMembers ? { etcdMembers: parts.etcdMembers } : {}),
    joinPoint: () =>
      parts.cluster && clusterPort !== undefined
        ? {
            address: `${parts.cluster.addresses[0]}:${clusterPort}`,
            caHash: caPublicKeyHash(new X509Certificate(parts.cluster.tls.ca)),
            caCertificate: parts.cluster.tls.ca.toString('utf8'),
            ...(parts.cluster.join ? { holdsCaKey: parts.cluster.join.canSign } : {}),
          }
        : undefined,
  });
  const routes = createApiRoutes({
    ctx,
    auth,
    handlers,
    logger,
    transfers,
    idleTimeoutMs: () => timing.idleTimeoutMs,
    streamUpgrade,
    ...(dataConnections ? { dataConnections } : {}),
    ...(router ? { router } : {}),
    ...(parts.cluster
      ? {
          transferProxy: new ClusterTransferProxy({
            view,
            masterNodes,
            tls: parts.cluster.tls,
            idleTimeoutMs: () => timing.idleTimeoutMs,
            logger,
          }),
        }
      : {}),
  });
  const api = createApiServer(routes, logger);
  // HTTPS first: once plain HTTP answers (what `dm cluster init` waits for), HTTPS does too.
  const secure = parts.tls ? createHttpsApiServer(routes, logger, parts.tls.material) : undefined;
  const tlsListener = secure
    ? createSharedTlsPort({
        https: secure,
        route: dataConnectionRoute(dataConnections, logger),
        firstRecordTimeoutMs: FIRST_RECORD_TIMEOUT_MS,
      })
    : undefined;
  const tlsPort = tlsListener && parts.tls ? await listenTls(tlsListener, parts.listenHost, parts.tls.port) : undefined;
  try {
    await listen(api, parts.listenHost, parts.port);
  } catch (e) {
    tlsListener?.close();
    throw e;
  }
  let nodeServer: Server | undefined;
  if (parts.cluster) {
    const nodeTransfer = createPeerRoutes({
      // The other nodes send as the cluster itself: with admin's rights, into replicas.
      authenticate: async (req) => (peerNodeId(req) && view.node(peerNodeId(req)!) ? NODE_CALLER : null),
      logger,
      sideFor: (caller) => transfers.localSide(caller, { replica: true }),
      idleTimeoutMs: () => timing.idleTimeoutMs,
    });
    const forwardedCallers = new WeakMap<IncomingMessage, Caller>();
    const forwardedDeps: PeerRoutesDeps<Caller> = {
      authenticate: async (req) => forwardedCallers.get(req) ?? null,
      logger,
      sideFor: (caller) => transfers.localSide(caller),
      idleTimeoutMs: () => timing.idleTimeoutMs,
    };
    const forwarded = createPeerRoutes(forwardedDeps);
    const forwardedStreams = createPeerStreams(forwardedDeps);
    nodeServer = createNodeServer(
      parts.cluster.tls,
      createNodeEndpoint({
        rpc: routes.rpcDeps,
        // A receive from a node stops at once when that node is gone (PeerTransfers).
        transfer: (req, res) => {
          const peer = peerNodeId(req);
          if (peer) peers?.track(peer, req.socket);
          return nodeTransfer(req, res);
        },
        forwardedTransfer: (req, res, caller) => {
          forwardedCallers.set(req, caller);
          return forwarded(req, res);
        },
        users: knownUsers,
        view,
        logger: logger.child({ part: 'node-endpoint' }),
        ...(parts.cluster.join
          ? {
              join: {
                ...parts.cluster.join,
                tokens: joinTokens,
                view,
                caPem: parts.cluster.tls.ca.toString('utf8'),
                logger: logger.child({ part: 'join' }),
              },
            }
          : {}),
      }),
    );
    if (streamUpgrade) {
      nodeServer.on(
        'upgrade',
        createNodeUpgrades({
          users: knownUsers,
          view,
          logger: logger.child({ part: 'node-endpoint' }),
          forwardedStreams: (req, socket, head, caller) => {
            forwardedCallers.set(req, caller);
            return forwardedStreams(req, socket, head);
          },
        }),
      );
    }
    await listen(nodeServer, parts.listenHost, parts.cluster.port);
  }
  clusterPort = nodeServer ? (nodeServer.address() as { port: number }).port : undefined;
  const advertiser = parts.cluster
    ? new BranchAdvertiser({
        store,
        lease,
        sizes,
        masterNodes,
        index,
        containers: ctx.containers,
        pool: () => driver.poolInfo(),
        intervalMs: 2000,
        logger,
      })
    : undefined;
  advertiser?.start();
  presence = {
    nodeId: parts.nodeId,
    addresses: parts.cluster?.addresses ?? [],
    clusterPort: clusterPort ?? 0,
    apiPort: (api.address() as { port: number }).port,
  };
  await advertisePresence(store, lease.id, presence).catch((e: unknown) => {
    api.close();
    tlsListener?.close();
    nodeServer?.close();
    throw e;
  });
  // Back from a planned restart (if it announced one): failover may act on this node again.
  if (cluster)
    await clearRestart(store, parts.nodeId).catch((err: unknown) =>
      logger.warn({ err }, 'could not clear this node’s planned-restart key: it ends with its grace'),
    );
  // Once this node is in the address records: the other nodes' endpoints take its calls only then.
  replicator?.start();
  peers?.start();
  failover?.start();
  let check: Server | undefined;
  if (parts.checkPort !== undefined) {
    check = createCheckServer();
    await listen(check, parts.listenHost, parts.checkPort);
  }
  let pluginServer: PluginSocketServer | undefined;
  if (plugin && tracker && parts.docker?.pluginSocket) {
    pluginServer = await PluginSocketServer.listen({
      socketPath: parts.docker.pluginSocket,
      methods: plugin.methods,
      logger,
    }).catch((err: unknown) => {
      logger.error({ err, socket: parts.docker?.pluginSocket }, 'the Docker volume plugin is not served');
      return undefined;
    });
    if (pluginServer) {
      logger.info({ socket: parts.docker.pluginSocket }, 'Docker volume plugin ready');
      // Containers kept running across our restart hold mounts made before it: count them again
      // (in the background: a slow engine must not hold up the API).
      void runningMountCounts(tracker)
        .then((counts) => {
          plugin.refs.restore(counts);
          logger.info({ mounts: plugin.refs.snapshot() }, 'Docker mounts counted from the running containers');
        })
        .catch((err: unknown) => logger.warn({ err }, 'could not count the running containers’ mounts'));
    }
  }
  const flexServer = parts.flexVolume ? await serveFlexVolume(parts.flexVolume, { ctx, handlers }, logger) : undefined;
  const port = (api.address() as { port: number }).port;
  const checkPort = check ? (check.address() as { port: number }).port : undefined;
  logger.info(
    { port, checkPort, tlsPort, clusterPort, tlsFingerprint: parts.tls?.material.fingerprint, nodeId: parts.nodeId },
    'dotmesh-server listening',
  );

  return {
    port,
    checkPort,
    tlsPort,
    dataConnections,
    clusterPort,
    view,
    ctx,
    handlers,
    transfers,
    recovery: report.actions,
    plugin: pluginServer ? plugin : undefined,
    async close() {
      await pluginServer?.close();
      await flexServer?.close();
      api.closeIdleConnections();
      secure?.closeIdleConnections();
      (nodeServer as { closeIdleConnections?: () => void } | undefined)?.closeIdleConnections?.();
      await Promise.all([
        new Promise<void>((r) => api.close(() => r())),
        tlsListener ? new Promise<void>((r) => tlsListener.close(() => r())) : Promise.resolve(),
        check ? new Promise<void>((r) => check.close(() => r())) : Promise.resolve(),
        nodeServer ? new Promise<void>((r) => nodeServer.close(() => r())) : Promise.resolve(),
      ]);
      peers?.stop();
      await failover?.stop();
      await replicator?.stop();
      await transfers.idle();
      await advertiser?.stop();
      unfollowTombstones();
      unfollowMastership();
      fence.stop();
      await view.close();
      if (cluster && parts.restartGraceSeconds) await announceRestart(store, parts.nodeId, parts.restartGraceSeconds, logger);
      lease.close();
      store.stop();
      if (parts.closeStorage !== false) {
        await driver.close();
        await store.close();
      }
    },
  };
}

/**
 * Makes this node the master of a branch another node masterNodes: asks that node to hand it over
 * (MoveBranch, passed on as `caller`), waits until the store's move is seen here, then takes the
 * branch over (activateBranch; also what followMastership does on its own).
 */
function takeOverVia(router: CallRouter, ctx: DotContext): (caller: Caller, fsId: string) => Promise<void> {
  return async (caller, fsId) => {
    const master = ctx.masterNodes.get(fsId)?.nodeId;
    if (master === undefined) {
      throw new DotmeshError('UNAVAILABLE', `branch ${fsId} has no master node to hand it over`, {
        hint: 'make this node its master with dm dot smash-branch-master',
      });
    }
    if (master !== ctx.nodeId) {
      const body = JSON.stringify({
        jsonrpc: '2.0',
        method: 'DotmeshRPC.MoveBranch',
        params: { BranchId: fsId, Node: ctx.nodeId },
        id: 1,
      });
      const reply = JSON.parse(await router.forward(master, body, caller, 1)) as {
        result?: { Revision?: number };
        error?: unknown;
      };
      if (reply.error !== undefined) throw errorFromRpc(reply.error);
      await ctx.view.caughtUp(reply.result?.Revision ?? 0);
    }
    await activateBranch(ctx, fsId);
  };
}

/** Who another node of the cluster acts as on the node endpoint: the cluster itself. */
export const NODE_CALLER: Caller = { id: ADMIN_USER_ID, name: 'admin', authMethod: 'internal' };

/**
 * Installs the FlexVolume driver and serves its socket beside it, acting as admin (the socket
 * is root's alone). A failure is logged and the server runs on without FlexVolume, as without
 * the Docker plugin.
 */
async function serveFlexVolume(
  flex: NonNullable<ServerParts['flexVolume']>,
  deps: Omit<FlexMountsDeps, 'caller'>,
  logger: Logger,
): Promise<FlexSocketServer | undefined> {
  const socketPath = join(flexDriverDir(flex.dir), FLEX_SOCKET_FILE);
  try {
    const installed = await installFlexDriver(flex.dir, flex.driverBinary);
    const mounts = new FlexMounts({ ...deps, caller: NODE_CALLER });
    const server = await FlexSocketServer.listen({ socketPath, mounts, logger: logger.child({ part: 'flexvolume' }) });
    const pruned = await mounts.pruneStale((target) => removedByKubelet(target));
    logger.info({ dir: flex.dir, installed, socket: socketPath, pruned }, 'FlexVolume driver dotmesh.io/dm ready');
    return server;
  } catch (err) {
    logger.error({ err, dir: flex.dir }, 'the FlexVolume driver is not served');
    return undefined;
  }
}

/** The plugin's user, looked up once it exists (ids never change). */
function pluginCaller(users: UserService, name: string): () => Promise<Caller | undefined> {
  let found: Caller | undefined;
  return async () => {
    if (found) return found;
    const user = await users.byName(name);
    if (user) found = { id: user.Id, name: user.Name, authMethod: 'internal' };
    return found;
  };
}

/** Running containers' mounts of our volumes, per canonical volume name. */
async function runningMountCounts(tracker: DockerContainerTracker): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const use of await tracker.uses()) {
    let name: string;
    try {
      name = formatVolumeName(parseVolumeName(use.volumeName));
    } catch {
      continue;
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

function dockerMountsState(plugin: VolumePlugin | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [volume, n] of Object.entries(plugin?.refs.snapshot() ?? {})) out[`docker.mounts.${volume}`] = String(n);
  return out;
}
