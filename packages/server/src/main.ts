import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import {
  etcdMemberFiles,
  type InitialAdmin,
  initialAdminSchema,
  parseServerConfigText,
  resolveFlexVolumeDir,
  type ServerConfig,
} from '@dotmesh/rpc';
import {
  acquirePoolLock,
  BtrfsDriver,
  checkPump,
  createExec,
  destroyPool,
  type Exec,
  openPool,
  type PoolLock,
  releasePool,
} from '@dotmesh/storage';
import { type EtcdMembers, votingClientUrls } from '@dotmesh/store/etcd-members';
import { holdsClusterCa, joinCluster, rejoinCluster } from './cluster/join-client.ts';
import { finishJoinFiles } from './cluster/join-files.ts';
import { awaitPoolClaim } from './cluster/pool-claim.ts';
import { ProcInUseChecker } from './dots/in-use.ts';
import { type StartedMember, startManagedMember } from './etcd/managed-member.ts';
import { managedMemberControl } from './etcd/member-control.ts';
import { EtcdMemberFollower } from './etcd/member-follower.ts';
import { readRecoveryStep } from './etcd/recovery-journal.ts';
import { writeStrandedReport } from './etcd/stranded-report.ts';
import { importEmbeddedStore } from './import-store.ts';
import { parseKubernetesArgs, prepareKubernetesNode } from './kubernetes-node.ts';
import { parsePreStop, preStop } from './kubernetes-prestop.ts';
import { createLogger, type Logger } from './log.ts';
import { openConfiguredStore } from './open-store.ts';
import { HostSpaceGuard } from './pool/host-space-guard.ts';
import { withPoolFullErrors } from './pool/pool-full-driver.ts';
import { LoopPoolControl, writePoolSizeToConfig } from './pool/pool-grow.ts';
import { VOLUME_GROWTH_CHECK_MS, VolumeGrowth } from './pool/volume-growth.ts';
import { type RunningServer, startServer } from './server.ts';
import { loadTlsMaterial } from './tls/https-server.ts';
import { defaultSubjectAltNames, ensureClusterPki, ensureNodeCert, LOOPBACK_NAMES, pkiFiles, signCsr } from './tls/pki.ts';
import { SERVER_VERSION } from './version.ts';

/** The environment variable naming the container's termination message file (the operator sets it). */
const TERMINATION_LOG_ENV = 'DOTMESH_TERMINATION_LOG';

/** How much longer than their TTL the leases of a cluster restarted from one member's data may run. */
const RECOVERY_LEASE_EXTRA_SECONDS = 10;

const USAGE = `usage: dotmesh-server <command> --config FILE

commands:
  serve          run the server (pool, store, API on the configured ports)
  serve-kubernetes  a node's server in its Kubernetes pod (writes its config at the first
                 start, then serves; see kubernetes-node.ts and docs/kubernetes.md)
  pre-stop       the server pod's preStop hook: when the pod is evicted, waits until no use
                 of this node's dots is left (kubernetes-prestop.ts)
  destroy-pool   unmount and detach the pool and delete its file (all data!)
  version        print the version

The config file is written by 'dm cluster init' (<pool dir>/server/config.json).`;

/**
 * Entry point: parses argv once, then runs one command. Returns the exit status. `entryDir`:
 * the directory of the script node runs (`dotmesh-pump` and `dotmesh-flexvolume` are looked for
 * beside it). `env`: the process environment (`DOTMESH_TERMINATION_LOG`: where a stranded etcd
 * member's report goes, see etcd/stranded-report.ts; `DOTMESH_FLEXVOLUME_DIR`, `KUBERNETES_SERVICE_HOST`:
 * see resolveFlexVolumeDir).
 */
export async function main(
  argv: readonly string[],
  entryDir: string,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'version' || command === '--version') {
    process.stdout.write(`${SERVER_VERSION}\n`);
    return 0;
  }
  if (command === 'pre-stop') {
    try {
      await preStop(parsePreStop(rest, env));
      return 0;
    } catch (e) {
      process.stderr.write(`dotmesh-server: ${isDotmeshError(e) ? e.fullMessage : String((e as Error)?.stack ?? e)}\n`);
      return 2;
    }
  }
  const kubernetes = command === 'serve-kubernetes';
  const configIndex = rest.indexOf('--config');
  const configFile = configIndex >= 0 ? rest[configIndex + 1] : undefined;
  if (!kubernetes && ((command !== 'serve' && command !== 'destroy-pool') || !configFile)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  try {
    const k8s = kubernetes ? parseKubernetesArgs(rest) : undefined;
    const terminationLog = env[TERMINATION_LOG_ENV] || undefined;
    const file = k8s ? await prepareKubernetesNode({ ...k8s, terminationLog }) : configFile!;
    const config = parseServerConfigText(await readFile(file, 'utf8'));
    if (command === 'destroy-pool') {
      await destroy(config);
      return 0;
    }
    await serve(config, file, entryDir, resolveFlexVolumeDir(config, env), k8s?.poolVolumeDir, terminationLog);
    return 0;
  } catch (e) {
    process.stderr.write(`dotmesh-server: ${isDotmeshError(e) ? e.fullMessage : String((e as Error)?.stack ?? e)}\n`);
    return 1;
  }
}

/**
 * The node-to-node endpoint's material: the cluster CA (made, or the one `dm cluster init`
 * copied in) and this node's certificate for its advertised address.
 */
async function clusterTls(config: ServerConfig, nodeId: string, exec: Exec, logger: Logger, members: EtcdMembers | undefined) {
  const address = advertiseAddressOf(config);
  const caKey = pkiFiles(config.stateDir).caKey;
  await ensureCa(config, exec);
  const files = await ensureNodeCert({ stateDir: config.stateDir, exec, nodeId, addresses: [address] });
  logger.info({ address, port: config.clusterPort, issued: files.issued }, 'node-to-node endpoint certificate');
  const [ca, cert, key] = await Promise.all([readFile(files.caCert), readFile(files.cert), readFile(files.key)]);
  const etcdCa = config.etcdCaFile ? await readFile(config.etcdCaFile, 'utf8') : null;
  const join = {
    canSign: () =>
      readFile(caKey).then(
        () => true,
        () => false,
      ),
    sign: (o: { csrPem: string; cn: string; names: readonly string[]; usage: string }) => signCsr(exec, config.stateDir, o),
    etcd: async () => ({
      // A managed etcd tells the members it has now.
      Endpoints: members ? votingClientUrls(await members.list()) : config.etcdEndpoints,
      Prefix: config.etcdPrefix,
      CaCert: etcdCa,
      Managed: members !== undefined,
    }),
  };
  return { port: config.clusterPort, addresses: [address], tls: { ca, cert, key }, join };
}

/** The first node of a cluster makes its CA (a joined node has the cluster's already). */
async function ensureCa(config: ServerConfig, exec: Exec): Promise<void> {
  const hasCa = await readFile(pkiFiles(config.stateDir).caCert).then(
    () => true,
    () => false,
  );
  if (!hasCa) {
    await ensureClusterPki({
      stateDir: config.stateDir,
      exec,
      subjectAltNames: defaultSubjectAltNames(config.tlsSubjectAltNames),
      requiredNames: [...LOOPBACK_NAMES, ...config.tlsSubjectAltNames],
    });
  }
}

/** Whether this node's store is a managed etcd (TLS with the cluster CA and this node's etcd certificate). */
function managedStore(config: ServerConfig): boolean {
  const files = etcdMemberFiles(config);
  return config.store === 'etcd' && config.etcdCaFile === files.ca && config.etcdCertFile === files.cert;
}

/** The config file update running: they run one at a time (a running server makes several). */
let configUpdates: Promise<unknown> = Promise.resolve();

/** Runs `update` of the config file after the ones before it. */
function inConfigOrder<T>(update: () => Promise<T>): Promise<T> {
  const run = configUpdates.then(update);
  configUpdates = run.catch(() => undefined);
  return run;
}

/** Replaces fields of the config file (atomically) and returns the config it now holds. */
function updateConfigFile(configFile: string, patch: Record<string, unknown>): Promise<ServerConfig> {
  return inConfigOrder(async () => {
    const text = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    const updated = { ...text, ...patch };
    const next = parseServerConfigText(JSON.stringify(updated));
    await writeFile(`${configFile}.new`, `${JSON.stringify(updated, null, 2)}\n`, { mode: 0o600 });
    await rename(`${configFile}.new`, configFile);
    return next;
  });
}

/**
 * A node that runs a managed etcd member starts it (see etcd/managed-member.ts) and keeps the
 * members' client URLs and its certificate files in its config; a joined node that did not
 * become a member (the cluster had three) keeps none.
 */
async function startEtcdMember(
  config: ServerConfig,
  configFile: string,
  nodeId: string,
  exec: Exec,
  logger: Logger,
  terminationLog: string | undefined,
) {
  const member = config.etcdMember;
  if (!member || config.store !== 'etcd') return { config, member: null, forced: false };
  await ensureCa(config, exec);
  const address = advertiseAddressOf(config);
  const step = await readRecoveryStep(config.stateDir);
  // This node restarts the cluster from its member's data (an etcd recovery): every lease, its
  // own earlier record's too, is renewed by that start.
  const forcing = step?.role === 'force-new-cluster' && !step.done;
  const started = await startManagedMember({
    config,
    member,
    nodeId,
    address,
    joining: config.join !== null,
    // A member moves to the node's new address only once the pool's earlier holder is gone.
    beforePeerUrlChange: async (endpoints) => {
      const store = await openConfiguredStore({ ...config, etcdEndpoints: [...endpoints] });
      try {
        await awaitPoolClaim(
          store,
          { nodeId, addresses: [address], clusterPort: config.clusterPort },
          { leaseTtlSeconds: config.nodeLeaseTtlSeconds, logger, extraSeconds: forcing ? RECOVERY_LEASE_EXTRA_SECONDS : 1 },
        );
      } finally {
        await store.close();
      }
    },
    // Every member moved at once: what this one's data holds goes to the operator (etcd recovery).
    ...(terminationLog === undefined
      ? {}
      : {
          onStranded: async (state) => {
            const files = etcdMemberFiles(config);
            const holdsCaKey = await readFile(files.caKey).then(
              () => true,
              () => false,
            );
            await writeStrandedReport(terminationLog, {
              nodeId,
              state,
              holdsCaKey,
              statusFile: files.statusFile,
              knownEndpoints: config.etcdEndpoints,
            });
            logger.warn(
              { ...state, holdsCaKey, report: terminationLog },
              'no other etcd member answers: reported this member stranded',
            );
          },
        }),
    exec,
    logger,
    moveWaitMs: config.etcdMoveWaitSeconds * 1000,
  });
  const files = etcdMemberFiles(config);
  const next = await updateConfigFile(
    configFile,
    started
      ? { etcdEndpoints: started.endpoints, etcdCaFile: files.ca, etcdCertFile: files.cert, etcdKeyFile: files.key }
      : { etcdMember: null },
  );
  return { config: next, member: started, forced: forcing };
}

function advertiseAddressOf(config: ServerConfig): string {
  return config.advertiseAddress ?? defaultAdvertiseAddress(config.listenHost);
}

/**
 * A node that `dm cluster join` set up joins at its first start (while the token file is
 * there): it gets its certificates and the store's whereabouts (cluster/join-client.ts), which
 * go into its config file. The token file is deleted whatever the outcome. A pool of this
 * cluster rejoins as its node (rejoinCluster: at a new address, new certificates). The files of
 * a join stopped midway are first put in place (finishJoinFiles).
 */
async function joinAtStart(config: ServerConfig, configFile: string, nodeId: string, exec: Exec, logger: Logger) {
  await finishJoinFiles(config.stateDir);
  const target = config.join;
  const token = target ? await readFile(config.joinTokenFile, 'utf8').catch(() => null) : null;
  if (!target || token === null) return config;
  try {
    // A pool of this cluster (a reinstalled host, a pool moved to a host at another address)
    // rejoins as its node, once that node is no longer live elsewhere.
    const rejoin = await holdsClusterCa(config.stateDir, target.caHash);
    logger.info({ through: target.address, caHash: target.caHash, node: nodeId, rejoin }, 'joining the cluster');
    const request = {
      target,
      token: token.trim(),
      nodeId,
      stateDir: config.stateDir,
      exec,
      nodeAddresses: [advertiseAddressOf(config)],
      httpsNames: config.tlsPort === 0 || config.tlsCertFile ? null : defaultSubjectAltNames(config.tlsSubjectAltNames),
    };
    const joined = rejoin
      ? await rejoinCluster({ ...request, leaseTtlSeconds: config.nodeLeaseTtlSeconds, logger })
      : await joinCluster(request);
    const etcdFiles = etcdMemberFiles(config);
    const next = await updateConfigFile(configFile, {
      store: 'etcd',
      etcdEndpoints: joined.etcd.endpoints,
      etcdPrefix: joined.etcd.prefix,
      ...(joined.etcd.caFile ? { etcdCaFile: joined.etcd.caFile } : {}),
      ...(joined.etcd.managed ? { etcdCertFile: etcdFiles.cert, etcdKeyFile: etcdFiles.key } : { etcdMember: null }),
    });
    logger.info({ endpoints: next.etcdEndpoints }, 'joined the cluster');
    return next;
  } finally {
    await rm(config.joinTokenFile, { force: true });
  }
}

/** How this server names itself in its pool's lock (pool-lock.ts): its node and API address. */
function poolHolderOf(config: ServerConfig): string {
  return `node ${config.nodeName ?? hostname()}, API at ${config.listenHost}:${config.port}`;
}

/** The listen address when it is one, else this host's first non-loopback IPv4 address. */
function defaultAdvertiseAddress(listenHost: string): string {
  if (listenHost !== '0.0.0.0' && listenHost !== '::' && isIP(listenHost) !== 0) return listenHost;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new DotmeshError('INVALID_ARGUMENT', 'this host has no non-loopback IPv4 address to advertise to the other nodes', {
    hint: 'set advertiseAddress in the server config (dm cluster init --advertise-address)',
  });
}

async function serve(
  initialConfig: ServerConfig,
  configFile: string,
  entryDir: string,
  flexVolumeDir: string | null,
  /** The pool's own volume (serve-kubernetes --pool-volume-dir): the pool follows its size. */
  poolVolumeDir: string | undefined,
  terminationLog: string | undefined,
): Promise<void> {
  let config = initialConfig;
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  await chmod(config.stateDir, 0o700);
  const logger = createLogger({ destination: config.logFile });
  const exec = createExec({ logger });
  let lock: PoolLock | undefined;
  let server: RunningServer | undefined;
  let etcd: StartedMember | null = null;
  let members: EtcdMembers | undefined;
  let follower: EtcdMemberFollower | undefined;
  let growth: VolumeGrowth | undefined;
  // Without its helper the btrfs driver cannot move commits: refuse to start rather than fail later.
  const pump = { binary: config.pumpBinary ?? join(entryDir, 'dotmesh-pump') };
  await checkPump(exec, pump);
  try {
    lock = await acquirePoolLock(config.existingMount ?? dirname(config.poolFile), poolHolderOf(config));
    const pool = await openPool({
      poolFile: config.poolFile,
      mountPoint: config.mountPoint,
      sizeBytes: config.poolSizeBytes,
      sparse: config.sparse,
      exec,
      logger,
      ...(config.existingMount ? { existingMount: config.existingMount } : {}),
    });
    logger.info({ poolId: pool.poolId, root: pool.root, loopDevice: pool.loopDevice }, 'pool ready');
    config = await joinAtStart(config, configFile, pool.poolId, exec, logger);
    let forced: boolean;
    ({ config, member: etcd, forced } = await startEtcdMember(config, configFile, pool.poolId, exec, logger, terminationLog));
    const guard =
      config.sparse && !config.existingMount
        ? new HostSpaceGuard({
            hostDir: dirname(config.poolFile),
            mountPoint: pool.root,
            reserveBytes: config.hostFreeReserveBytes,
            intervalMs: config.hostCheckIntervalMs,
            exec,
            logger,
          })
        : undefined;
    const tls =
      config.tlsPort === 0
        ? undefined
        : await loadTlsMaterial({
            stateDir: config.stateDir,
            certFile: config.tlsCertFile,
            keyFile: config.tlsKeyFile,
            subjectAltNames: config.tlsSubjectAltNames,
            exec,
          });
    if (tls) logger.info({ certFile: tls.certFile, generated: tls.generated, sha256: tls.fingerprint }, 'TLS certificate');
    const poolControl = new LoopPoolControl({
      device: {
        poolFile: config.existingMount ? null : config.poolFile,
        mountPoint: pool.root,
        sparse: config.sparse,
        ownsFilesystem: poolVolumeDir !== undefined,
      },
      exec,
      logger,
      persistSize: (bytes) => inConfigOrder(() => writePoolSizeToConfig(configFile, bytes)),
    });
    growth =
      poolVolumeDir === undefined
        ? undefined
        : new VolumeGrowth({ volumeDir: poolVolumeDir, pool: poolControl, intervalMs: VOLUME_GROWTH_CHECK_MS, logger });
    const store = await openConfiguredStore(config);
    if (config.store === 'etcd' && config.importStoreFile) {
      await importEmbeddedStore({ file: config.importStoreFile, target: store, logger });
    }
    // The pool's claim, before this node's certificate is looked at: a pool whose earlier holder
    // died is taken over once its lease expires; a copy of a live pool is refused.
    if (config.clusterPort !== 0) {
      await awaitPoolClaim(
        store,
        { nodeId: pool.poolId, addresses: [advertiseAddressOf(config)], clusterPort: config.clusterPort },
        { leaseTtlSeconds: config.nodeLeaseTtlSeconds, logger, extraSeconds: forced ? RECOVERY_LEASE_EXTRA_SECONDS : 1 },
      );
    }
    if (managedStore(config)) {
      const { EtcdMembers } = await import('@dotmesh/store/etcd-members');
      const { EtcdStore } = await import('@dotmesh/store/etcd');
      const [ca, cert, key] = await Promise.all(
        [config.etcdCaFile, config.etcdCertFile, config.etcdKeyFile].map((f) => readFile(f!)),
      );
      members = new EtcdMembers({ endpoints: config.etcdEndpoints, ca: ca!, cert: cert!, key: key! });
      if (store instanceof EtcdStore) {
        follower = new EtcdMemberFollower({
          members,
          store,
          persisted: config.etcdEndpoints,
          persist: async (endpoints) => void (await updateConfigFile(configFile, { etcdEndpoints: endpoints })),
          logger,
        });
        follower.start();
        const following = follower;
        // A member the cluster removed is not started again (etcd-process.ts); the next start
        // runs none either, and the store uses the members left.
        etcd?.process.onRemoved(() => {
          void updateConfigFile(configFile, { etcdMember: null })
            .then(() => rm(etcdMemberFiles(config).statusFile, { force: true }))
            .catch((err: unknown) => logger.error({ err }, 'cannot record in the config that this node runs no etcd member'))
            .then(() => following.refresh());
        });
      }
    }
    const cluster = config.clusterPort === 0 ? undefined : await clusterTls(config, pool.poolId, exec, logger, members);
    logger.info({ store: config.store, endpoints: config.etcdEndpoints }, 'store open');
    server = await startServer({
      driver: withPoolFullErrors(
        new BtrfsDriver({ root: pool.root, exec, logger, pump }),
        config.existingMount ?? config.poolFile,
      ),
      transferStreamUpgrade: config.transferStreamUpgrade,
      transferDataConnections: config.transferDataConnections,
      store,
      logger,
      nodeId: pool.poolId,
      containerMountDir: join(config.poolDir, 'container_mnt'),
      initialAdmin: await readInitialAdmin(config.initialAdminFile),
      listenHost: config.listenHost,
      port: config.port,
      checkPort: config.checkPort,
      ...(tls ? { tls: { port: config.tlsPort, material: tls } } : {}),
      ...(cluster ? { cluster } : {}),
      ...(members ? { etcdMembers: managedMemberControl(members, () => follower?.refresh()) } : {}),
      nodeLease: { ttlSeconds: config.nodeLeaseTtlSeconds, marginMs: Math.min(2000, config.nodeLeaseTtlSeconds * 200) },
      transferTiming: {
        idleTimeoutMs: config.transferIdleTimeoutMs,
        attempts: config.transferAttempts,
        backoffMs: config.transferBackoffMs,
      },
      replication: {
        enabled: config.replicate,
        sweepMs: config.replicationSweepMs,
        concurrency: config.replicationConcurrency,
        backoffMs: Math.max(config.transferBackoffMs, 100),
        syncCommitTimeoutMs: config.syncCommitTimeoutMs,
      },
      failover: { enabled: config.failover, sweepMs: config.failoverSweepMs },
      restartGraceSeconds: config.restartGraceSeconds,
      inUse: new ProcInUseChecker(),
      docker: {
        engineSocket: config.dockerSocket,
        pluginSocket: config.dockerPluginSocket,
        pluginUser: config.dockerPluginUser,
      },
      ...(flexVolumeDir
        ? { flexVolume: { dir: flexVolumeDir, driverBinary: config.flexVolumeDriver ?? join(entryDir, 'dotmesh-flexvolume') } }
        : {}),
      ...(guard ? { writeGuard: guard } : {}),
      pool: poolControl,
    });
    await guard?.start();
    await growth?.start();
    // Used or not (they only seed a store without an admin), the initial credentials are not kept.
    await rm(config.initialAdminFile, { force: true });
    await writeFile(config.pidFile, `${process.pid}\n`, { mode: 0o644 });
  } catch (e) {
    logger.error({ err: e }, 'dotmesh-server failed to start');
    growth?.stop();
    follower?.stop();
    await server?.close().catch(() => undefined);
    members?.close();
    await etcd?.process.stop().catch(() => undefined);
    await lock?.release().catch(() => undefined);
    throw e;
  }
  const running = server;
  const member = etcd;
  const membersClient = members;
  const following = follower;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, config.releasePoolAtStop ? 'stopping (the pool is released)' : 'stopping (the pool stays mounted)');
      following?.stop();
      growth?.stop();
      void running
        .close()
        .catch((err: unknown) => logger.error({ err }, 'error while stopping'))
        // The store's etcd member stops after the server closed the store.
        .then(() => membersClient?.close())
        .then(() => member?.process.stop())
        .catch((err: unknown) => logger.error({ err }, 'error while stopping the etcd member'))
        .then(() => (config.releasePoolAtStop && !config.existingMount ? releasedPool(config, logger) : undefined))
        .then(() => rm(config.pidFile, { force: true }))
        .then(() => lock?.release())
        .finally(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** releasePoolAtStop: unmounts and detaches the pool (after the server and etcd member stopped). */
async function releasedPool(config: ServerConfig, logger: Logger): Promise<void> {
  try {
    await releasePool({ poolFile: config.poolFile, mountPoint: config.mountPoint, exec: createExec({ logger }) });
    logger.info({ poolFile: config.poolFile }, 'pool unmounted and its loop device detached: its volume can move');
  } catch (err) {
    logger.error({ err, poolFile: config.poolFile }, 'cannot release the pool (something still uses a mount of it)');
  }
}

async function readInitialAdmin(file: string): Promise<InitialAdmin | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const parsed = initialAdminSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new DotmeshError('INVALID_ARGUMENT', `${file} is not a valid initial admin credentials file`);
  return parsed.data;
}

async function destroy(config: ServerConfig): Promise<void> {
  if (config.existingMount) {
    throw new DotmeshError(
      'UNSUPPORTED',
      `refusing to destroy ${config.existingMount}: it is an existing btrfs mount, not a pool file`,
      {
        hint: 'delete its fs/ directory yourself if you really mean it',
      },
    );
  }
  const lock = await acquirePoolLock(dirname(config.poolFile));
  try {
    await destroyPool({ poolFile: config.poolFile, mountPoint: config.mountPoint, exec: createExec({}) });
  } finally {
    await lock.release();
  }
}

export type { Logger };
