import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { StorageDriver } from '@dotmesh/storage';
import type { Store } from '@dotmesh/store';
import { Authenticator } from './auth/authenticator.ts';
import { UserService } from './auth/users.ts';
import { KeyedQueue } from './concurrency/keyed-queue.ts';
import { KeyedRwLock } from './concurrency/rw-lock.ts';
import { type ContainerTracker, NO_CONTAINERS } from './dots/containers.ts';
import type { DotContext } from './dots/context.ts';
import { DotIndex } from './dots/dot-index.ts';
import { type InUseChecker, NEVER_IN_USE } from './dots/in-use.ts';
import { ContainerPaths } from './dots/procure.ts';
import { reconcileFromPool } from './dots/reconcile.ts';
import { SizeTracker } from './dots/sizes.ts';
import { StoreMirror } from './dots/store-mirror.ts';
import { Failpoints } from './failpoints.ts';
import { createApiRoutes } from './http/api-routes.ts';
import { createApiServer, createCheckServer, listen } from './http/servers.ts';
import type { Logger } from './log.ts';
import { ALWAYS_WRITABLE, type WriteGuard } from './pool/host-space-guard.ts';
import type { PoolControl } from './pool/pool-grow.ts';
import { createHandlers, dumpIndex, type HandlerTable } from './rpc/handlers.ts';
import { ownerForNewDot } from './rpc/user-handlers.ts';
import { createHttpsApiServer, listenTls, type TlsMaterial } from './tls/https-server.ts';
import { DEFAULT_TRANSFER_TIMING, TransferEngine, type TransferTiming } from './transfer/engine.ts';
import { TransferRecords } from './transfer/records.ts';
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
  readonly initialAdmin?: { password: string; apiKey: string };
  readonly listenHost: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly checkPort?: number;
  /** Also serve the API over HTTPS on this port (0 picks a free one) with this certificate. */
  readonly tls?: { readonly port: number; readonly material: TlsMaterial };
  readonly containers?: ContainerTracker;
  readonly inUse?: InUseChecker;
  readonly writeGuard?: WriteGuard;
  /** The pool device (GrowPool, PoolInfo's file size); absent: the pool cannot grow. */
  readonly pool?: PoolControl;
  readonly now?: () => Date;
  readonly newId?: () => string;
  readonly crash?: () => never;
  /** Transfer idle timeout, attempts and backoff (DEFAULT_TRANSFER_TIMING when absent). */
  readonly transferTiming?: TransferTiming;
  /** false: close() leaves the driver and store open (tests that restart on the same ones). */
  readonly closeStorage?: boolean;
}

export interface RunningServer {
  readonly port: number;
  readonly checkPort: number | undefined;
  /** The HTTPS API port, when serving one. */
  readonly tlsPort: number | undefined;
  readonly ctx: DotContext;
  readonly handlers: HandlerTable;
  readonly transfers: TransferEngine;
  readonly recovery: readonly string[];
  close(): Promise<void>;
}

export async function startServer(parts: ServerParts): Promise<RunningServer> {
  const { driver, store, logger } = parts;
  const opened = await driver.open();
  for (const action of opened.actions) logger.info({ recovery: true }, `storage: ${action}`);

  const users = new UserService(store);
  const admin = await users.ensureAdmin(parts.initialAdmin);
  if (admin !== 'kept') logger.info({ admin }, `${admin} the admin user from the initial credentials`);

  const index = new DotIndex();
  const ctx: DotContext = {
    driver,
    index,
    mirror: new StoreMirror(store, index, parts.nodeId),
    failpoints: new Failpoints(parts.crash),
    logger,
    locks: new KeyedRwLock(),
    queues: new KeyedQueue(),
    containers: parts.containers ?? NO_CONTAINERS,
    inUse: parts.inUse ?? NEVER_IN_USE,
    writeGuard: parts.writeGuard ?? ALWAYS_WRITABLE,
    nodeId: parts.nodeId,
    now: parts.now ?? (() => new Date()),
    newId: parts.newId ?? randomUUID,
  };
  const report = await reconcileFromPool(ctx);
  logger.info(
    { dots: index.dots.size, branches: index.branches.size, changes: report.actions.length },
    'index rebuilt from the pool',
  );

  const auth = new Authenticator(users);
  const records = new TransferRecords(store, logger);
  await records.load();
  const timing = parts.transferTiming ?? DEFAULT_TRANSFER_TIMING;
  const transfers = new TransferEngine(
    ctx,
    records,
    { ownerOf: (caller, ns) => ownerForNewDot(users, caller, ns) },
    () => timing,
  );
  const handlers = createHandlers({
    ctx,
    sizes: new SizeTracker(driver),
    users,
    auth,
    paths: new ContainerPaths(parts.containerMountDir),
    version: SERVER_VERSION,
    internalState: () => dumpIndex(ctx),
    store,
    transfers,
    ...(parts.pool ? { pool: parts.pool } : {}),
  });
  const routes = createApiRoutes({ ctx, auth, handlers, logger, transfers, idleTimeoutMs: () => timing.idleTimeoutMs });
  const api = createApiServer(routes, logger);
  // HTTPS first: once plain HTTP answers (what `dm cluster init` waits for), HTTPS does too.
  const secure = parts.tls ? createHttpsApiServer(routes, logger, parts.tls.material) : undefined;
  const tlsPort = secure && parts.tls ? await listenTls(secure, parts.listenHost, parts.tls.port) : undefined;
  try {
    await listen(api, parts.listenHost, parts.port);
  } catch (e) {
    secure?.close();
    throw e;
  }
  let check: Server | undefined;
  if (parts.checkPort !== undefined) {
    check = createCheckServer();
    await listen(check, parts.listenHost, parts.checkPort);
  }
  const port = (api.address() as { port: number }).port;
  const checkPort = check ? (check.address() as { port: number }).port : undefined;
  logger.info(
    { port, checkPort, tlsPort, tlsFingerprint: parts.tls?.material.fingerprint, nodeId: parts.nodeId },
    'dotmesh-server listening',
  );

  return {
    port,
    checkPort,
    tlsPort,
    ctx,
    handlers,
    transfers,
    recovery: report.actions,
    async close() {
      api.closeIdleConnections();
      secure?.closeIdleConnections();
      await Promise.all([
        new Promise<void>((r) => api.close(() => r())),
        secure ? new Promise<void>((r) => secure.close(() => r())) : Promise.resolve(),
        check ? new Promise<void>((r) => check.close(() => r())) : Promise.resolve(),
      ]);
      await transfers.idle();
      if (parts.closeStorage !== false) {
        await driver.close();
        await store.close();
      }
    },
  };
}
