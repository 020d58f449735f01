import { isIP } from 'node:net';
import { join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import { z } from 'zod';
import {
  CONFIG_FILE_NAME,
  DEFAULT_CHECK_PORT,
  DEFAULT_DOCKER_PLUGIN_SOCKET,
  DEFAULT_DOCKER_SOCKET,
  DEFAULT_ETCD_MOVE_WAIT_SECONDS,
  DEFAULT_FLEXVOLUME_DIR,
  DEFAULT_LISTEN_HOST,
  DEFAULT_POOL_DIR,
  DEFAULT_POOL_SIZE,
  DEFAULT_RPC_PORT,
  MAX_ETCD_MOVE_WAIT_SECONDS,
  MIN_ETCD_MOVE_WAIT_SECONDS,
  parseSize,
} from './server-defaults.ts';

export * from './server-defaults.ts';

/**
 * The contract between `dm cluster init` (which writes `<stateDir>/config.json`) and
 * dotmesh-server (`serve --config FILE`, `destroy-pool --config FILE`, which read it).
 *
 * Every path field is absolute. Missing fields take defaults derived from `poolDir`, so a
 * file holding only `{"poolDir":"/x"}` is complete. The state dir (store, log, pid file,
 * initial credentials) must be mode 0700; the initial-admin file 0600.
 */
export interface ServerConfig {
  readonly poolDir: string;
  /** Loop file holding the btrfs pool (unused when existingMount is set). */
  readonly poolFile: string;
  readonly poolSizeBytes: number;
  /** Pool file created sparse (truncate) instead of preallocated (fallocate). */
  readonly sparse: boolean;
  /** Use this already-mounted btrfs filesystem instead of a pool file. */
  readonly existingMount: string | null;
  /** Where the pool is mounted. */
  readonly mountPoint: string;
  /**
   * On a graceful stop, unmount the pool (and the dots' mounts of it) and detach its loop
   * device, instead of leaving it mounted for the next start (default false): for a pool file on
   * a volume that must move to another host (a Kubernetes pool PVC).
   */
  readonly releasePoolAtStop: boolean;
  /** Store, logs, pid file, credentials; mode 0700. */
  readonly stateDir: string;
  readonly storeFile: string;
  readonly logFile: string;
  readonly pidFile: string;
  /**
   * 0600 JSON {password, apiKey[, replaceExisting]} read at start and then deleted: it seeds the
   * admin user of a store that has none, and is ignored when the store has an admin already
   * (unless `replaceExisting`, which replaces that admin's password and API key).
   */
  readonly initialAdminFile: string;
  readonly listenHost: string;
  readonly port: number;
  readonly checkPort: number;
  readonly nodeName?: string;
  /**
   * Sparse pools only: below this much free space on the host filesystem under the pool file
   * the server remounts the pool read-only and refuses writes (default 1 GiB).
   */
  readonly hostFreeReserveBytes: number;
  /** How often the host's free space is checked (default 5000 ms). */
  readonly hostCheckIntervalMs: number;
  /** The cluster store: 'embedded' (storeFile, default) or 'etcd' (etcdEndpoints). */
  readonly store: 'embedded' | 'etcd';
  /** etcd client URLs (store 'etcd'), all http:// or all https://. */
  readonly etcdEndpoints: string[];
  /** PEM files for etcd TLS: the CA (needed for https://) and a client certificate and key. */
  readonly etcdCaFile: string | null;
  readonly etcdCertFile: string | null;
  readonly etcdKeyFile: string | null;
  /** Key prefix every store key lives under in etcd (default ''). */
  readonly etcdPrefix: string;
  /**
   * How long an etcd write may take before it fails with UNAVAILABLE (default 1500 ms): etcd with a
   * quorum commits in milliseconds, without one it never answers (docs/cluster.md).
   */
  readonly etcdWriteTimeoutMs: number;
  /**
   * The API over HTTPS on this port beside plain HTTP on `port`; 0 (the default of a file
   * without the field) serves no HTTPS. `dm cluster init` writes DEFAULT_TLS_PORT.
   */
  readonly tlsPort: number;
  /** A given certificate and key (PEM); null: a per-cluster CA and certificate in `<stateDir>/tls/`. */
  readonly tlsCertFile: string | null;
  readonly tlsKeyFile: string | null;
  /** Extra subject alternative names of the generated certificate (host names or IP addresses). */
  readonly tlsSubjectAltNames: string[];
  /** Transfers: a connection that moves no byte for this long is dropped and retried (default 30 s). */
  readonly transferIdleTimeoutMs: number;
  /** Transfers: attempts before a transfer ends in error (default 5). */
  readonly transferAttempts: number;
  /** Transfers: the wait before attempt n+1 is n × this (default 2000 ms). */
  readonly transferBackoffMs: number;
  /**
   * Transfers: offer and serve commit streams on upgraded connections, which on plain HTTP the
   * btrfs driver's helper reads and writes without Node (default true). false: plain HTTP
   * bodies only, as servers before them.
   */
  readonly transferStreamUpgrade: boolean;
  /**
   * Transfers over HTTPS: a push to a pinned peer moves its commit stream on a data connection
   * of its own, with TLS ended by the btrfs driver's helper on both servers instead of Node
   * (default true; needs transferStreamUpgrade). false: neither asked for nor offered.
   */
  readonly transferDataConnections: boolean;
  /**
   * Replication (a cluster of several nodes): every commit of the branches this node masters
   * is sent to every other live node in the background (default true). false: commits move
   * only with a handoff.
   */
  readonly replicate: boolean;
  /** Replication: every branch is checked against every node this often, catching anything missed (default 30 s). */
  readonly replicationSweepMs: number;
  /** Replication: transfers to other nodes running at once, at most (default 2). */
  readonly replicationConcurrency: number;
  /**
   * A Commit on a `sync` branch waits this long at most for another node to hold the commit
   * before answering NOT_REPLICATED (default 30 s).
   */
  readonly syncCommitTimeoutMs: number;
  /**
   * Automatic failover (a cluster of several nodes): a branch whose master node is gone (its
   * lease expired) moves to the live node holding its newest commit, unless pinned (default
   * true). false: such branches wait for an admin (dm dot smash-branch-master).
   */
  readonly failover: boolean;
  /** Failover: every branch's master node is checked this often (default 3 s). */
  readonly failoverSweepMs: number;
  /**
   * A clean stop (SIGTERM) of a node of several announces a planned restart for this long: no
   * other node takes its branches over meanwhile, even past its lease TTL (an upgrade, a pod
   * made again). 0: none (failover one TTL after any stop).
   */
  readonly restartGraceSeconds: number;
  /**
   * dotmesh-pump, the btrfs driver's helper that moves commit streams; null (the default): the
   * `dotmesh-pump` beside the server's entry script (where `npm run build` and scripts/install
   * put it).
   */
  readonly pumpBinary: string | null;
  /**
   * Docker volume plugin socket; its file name without `.sock` is the volume driver name
   * (default /run/docker/plugins/dm.sock: driver `dm`). null: no plugin.
   */
  readonly dockerPluginSocket: string | null;
  /** The Docker Engine API socket, for tracking, stopping and starting containers (default /var/run/docker.sock). */
  readonly dockerSocket: string;
  /** The Dotmesh user the volume plugin acts as (default admin). */
  readonly dockerPluginUser: string;
  /**
   * The kubelet's FlexVolume plugin directory (its `volumePluginDir`): the server installs the
   * driver `dotmesh.io/dm` there (`<dir>/dotmesh.io~dm/dm`) and serves `dm.sock` beside it.
   * null: none. undefined (the field absent): `resolveFlexVolumeDir` decides at start — the
   * original's DEFAULT_FLEXVOLUME_DIR under Kubernetes only.
   */
  readonly flexVolumeDir: string | null | undefined;
  /** The driver executable to install; null (the default): `dotmesh-flexvolume` beside the server's entry script. */
  readonly flexVolumeDriver: string | null;
  /**
   * The node-to-node endpoint of a cluster of several nodes (mutual TLS with certificates of the
   * cluster CA in `<stateDir>/tls/`): forwarded calls, handoffs. 0 (the default) serves none.
   */
  readonly clusterPort: number;
  /** The address other nodes reach this node at; null: the first non-loopback IPv4 address. */
  readonly advertiseAddress: string | null;
  /**
   * TTL of this node's lease in the store, in seconds (default 10): its own keys vanish that
   * long after it is gone, and it stops writing before that if it cannot renew the lease.
   */
  readonly nodeLeaseTtlSeconds: number;
  /**
   * The cluster this node joins (`dm cluster join`): a node's node-to-node `host:port` and the
   * pin of the cluster CA. The server joins at start while `joinTokenFile` exists (it deletes
   * the file then, joined or not); null: not a joined node.
   */
  readonly join: { readonly address: string; readonly caHash: string } | null;
  /** 0600: the join token `dm cluster join` leaves for the server (default `<stateDir>/join-token`). */
  readonly joinTokenFile: string;
  /**
   * A node moving from the embedded store to etcd: this embedded store file is copied into etcd
   * at start while it exists (then renamed `<file>.imported`); null: nothing to move.
   */
  readonly importStoreFile: string | null;
  /**
   * A managed etcd member on this host (`dm cluster init --store etcd` without endpoints, or a
   * node that joined such a cluster while it had fewer than three members): dotmesh-server
   * starts it before it opens the store and stops it after it closed it, with its peer and
   * client certificate of the cluster CA (`<stateDir>/tls/etcd.pem`), its data in
   * `<stateDir>/etcd/`. null: the store's etcd is not run by this node.
   */
  readonly etcdMember: EtcdMemberConfig | null;
  /**
   * A managed member whose node's address changed (its pool moved) waits this long, in seconds,
   * for the other members to take its new peer URL; then the start fails, and when no member
   * answered at all the member is reported stranded (etcd/peer-url-move.ts; default 120, 5 to
   * 3600). A short wait suits only a cluster where an unanswered member cannot come back (every
   * node replaced at once): a member that fails its move starts again with its pod.
   */
  readonly etcdMoveWaitSeconds: number;
}

/** The managed etcd member's settings (see `ServerConfig.etcdMember`). */
export interface EtcdMemberConfig {
  /** The etcd binary (3.4 or later). */
  readonly bin: string;
  /** Client URL port (https, on the advertised address and loopback) and peer URL port (https). */
  readonly clientPort: number;
  readonly peerPort: number;
}

/**
 * What the server writes into `etcd-member.json` once its managed member votes (and `dm
 * cluster init` / `join` report): its name (the node id), etcd's member id, and the
 * membership then.
 */
export interface EtcdMemberStatus {
  readonly name: string;
  readonly id: string;
  /** Voting member (a learner that caught up was promoted); false: still a learner. */
  readonly voting: boolean;
  readonly members: number;
  readonly voters: number;
  /** The peer URL it ran with (a later start at another address moves it first). */
  readonly peerUrl?: string;
}

/** Where a managed etcd member keeps its data, pid, log and certificate (under the state dir). */
export function etcdMemberFiles(config: Pick<ServerConfig, 'stateDir'>): {
  dataDir: string;
  pidFile: string;
  logFile: string;
  statusFile: string;
  cert: string;
  key: string;
  ca: string;
  caKey: string;
} {
  return {
    dataDir: join(config.stateDir, 'etcd'),
    pidFile: join(config.stateDir, 'etcd.pid'),
    logFile: join(config.stateDir, 'etcd.log'),
    statusFile: join(config.stateDir, 'etcd-member.json'),
    cert: join(config.stateDir, 'tls', 'etcd.pem'),
    key: join(config.stateDir, 'tls', 'etcd-key.pem'),
    ca: join(config.stateDir, 'tls', 'ca.pem'),
    caKey: join(config.stateDir, 'tls', 'ca-key.pem'),
  };
}

const absPath = z.string().refine((p) => p.startsWith('/'), { error: 'must be an absolute path' });
const port = z.number().int().min(1).max(65535);

/** Schema of the config file as written (derived fields optional). */
export const serverConfigFileSchema = z.object({
  poolDir: absPath.default(DEFAULT_POOL_DIR),
  poolFile: absPath.optional(),
  poolSizeBytes: z.union([z.number(), z.string()]).optional(),
  sparse: z.boolean().default(false),
  existingMount: absPath.nullable().default(null),
  mountPoint: absPath.optional(),
  releasePoolAtStop: z.boolean().default(false),
  stateDir: absPath.optional(),
  storeFile: absPath.optional(),
  logFile: absPath.optional(),
  pidFile: absPath.optional(),
  initialAdminFile: absPath.optional(),
  listenHost: z.string().min(1).default(DEFAULT_LISTEN_HOST),
  port: port.default(DEFAULT_RPC_PORT),
  checkPort: port.default(DEFAULT_CHECK_PORT),
  nodeName: z.string().min(1).max(64).optional(),
  hostFreeReserveBytes: z.union([z.number(), z.string()]).optional(),
  hostCheckIntervalMs: z.number().int().min(50).max(3_600_000).default(5000),
  store: z.enum(['embedded', 'etcd']).default('embedded'),
  etcdEndpoints: z.array(z.string().regex(/^https?:\/\/[^/\s]+\/?$/, { error: 'must be http(s)://host:port URLs' })).default([]),
  etcdCaFile: absPath.nullable().default(null),
  etcdCertFile: absPath.nullable().default(null),
  etcdKeyFile: absPath.nullable().default(null),
  etcdPrefix: z.string().default(''),
  etcdWriteTimeoutMs: z.number().int().min(100).max(60_000).default(1500),
  tlsPort: z.number().int().min(0).max(65535).default(0),
  tlsCertFile: absPath.nullable().default(null),
  tlsKeyFile: absPath.nullable().default(null),
  tlsSubjectAltNames: z
    .array(z.string().regex(/^[0-9A-Za-z.:*_-]{1,253}$/, { error: 'must be host names or IP addresses' }))
    .default([]),
  transferIdleTimeoutMs: z.number().int().min(100).max(3_600_000).default(30_000),
  transferAttempts: z.number().int().min(1).max(100).default(5),
  transferBackoffMs: z.number().int().min(0).max(600_000).default(2000),
  transferStreamUpgrade: z.boolean().default(true),
  transferDataConnections: z.boolean().default(true),
  replicate: z.boolean().default(true),
  replicationSweepMs: z.number().int().min(100).max(3_600_000).default(30_000),
  replicationConcurrency: z.number().int().min(1).max(64).default(2),
  // Below the 120 s a node waits for a call it forwarded to the master (NodeClient).
  syncCommitTimeoutMs: z.number().int().min(100).max(100_000).default(30_000),
  failover: z.boolean().default(true),
  failoverSweepMs: z.number().int().min(100).max(600_000).default(3000),
  restartGraceSeconds: z.number().int().min(0).max(3600).default(120),
  pumpBinary: absPath.nullable().default(null),
  dockerPluginSocket: absPath
    .refine((p) => /\/[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}\.sock$/.test(p), { error: 'must end in /<driver name>.sock' })
    .nullable()
    .default(DEFAULT_DOCKER_PLUGIN_SOCKET),
  dockerSocket: absPath.default(DEFAULT_DOCKER_SOCKET),
  dockerPluginUser: z
    .string()
    .regex(/^[a-zA-Z0-9_-]{1,64}$/, { error: 'must be a user name' })
    .default('admin'),
  flexVolumeDir: absPath.nullable().optional(),
  flexVolumeDriver: absPath.nullable().default(null),
  clusterPort: z.number().int().min(0).max(65535).default(0),
  advertiseAddress: z
    .string()
    .refine((a) => isIP(a) !== 0, { error: 'must be an IP address' })
    .nullable()
    .default(null),
  nodeLeaseTtlSeconds: z.number().int().min(2).max(600).default(10),
  join: z
    .object({
      address: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { error: 'must be host:port' }),
      caHash: z.string().regex(/^sha256:[0-9a-f]{64}$/, { error: 'must be sha256:<64 hex digits>' }),
    })
    .nullable()
    .default(null),
  joinTokenFile: absPath.optional(),
  importStoreFile: absPath.nullable().default(null),
  etcdMember: z
    .object({ bin: z.string().min(1), clientPort: port, peerPort: port })
    .nullable()
    .default(null),
  etcdMoveWaitSeconds: z
    .number()
    .int()
    .min(MIN_ETCD_MOVE_WAIT_SECONDS)
    .max(MAX_ETCD_MOVE_WAIT_SECONDS)
    .default(DEFAULT_ETCD_MOVE_WAIT_SECONDS),
});

export type ServerConfigInput = z.input<typeof serverConfigFileSchema>;

/** Validates a parsed config file and fills in the derived defaults. */
export function resolveServerConfig(input: unknown): ServerConfig {
  const parsed = serverConfigFileSchema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || 'config';
    throw new DotmeshError('INVALID_ARGUMENT', `invalid server config: ${field} ${issue?.message ?? ''}`.trim());
  }
  const c = parsed.data;
  const stateDir = c.stateDir ?? join(c.poolDir, 'server');
  return {
    poolDir: c.poolDir,
    poolFile: c.poolFile ?? join(c.poolDir, 'dotmesh_data'),
    poolSizeBytes: parseSize(c.poolSizeBytes ?? DEFAULT_POOL_SIZE),
    sparse: c.sparse,
    existingMount: c.existingMount,
    mountPoint: c.mountPoint ?? join(c.poolDir, 'mnt'),
    stateDir,
    storeFile: c.storeFile ?? join(stateDir, 'store.db'),
    logFile: c.logFile ?? join(stateDir, 'dotmesh-server.log'),
    pidFile: c.pidFile ?? join(stateDir, 'dotmesh-server.pid'),
    initialAdminFile: c.initialAdminFile ?? join(stateDir, 'initial-admin.json'),
    join: c.join,
    joinTokenFile: c.joinTokenFile ?? join(stateDir, 'join-token'),
    importStoreFile: c.importStoreFile,
    etcdMember: c.etcdMember,
    etcdMoveWaitSeconds: c.etcdMoveWaitSeconds,
    etcdWriteTimeoutMs: c.etcdWriteTimeoutMs,
    listenHost: c.listenHost,
    port: c.port,
    checkPort: c.checkPort,
    ...(c.nodeName === undefined ? {} : { nodeName: c.nodeName }),
    hostFreeReserveBytes: parseSize(c.hostFreeReserveBytes ?? '1G'),
    hostCheckIntervalMs: c.hostCheckIntervalMs,
    releasePoolAtStop: c.releasePoolAtStop,
    ...etcdSettings(c),
    ...tlsSettings(c),
    transferIdleTimeoutMs: c.transferIdleTimeoutMs,
    transferAttempts: c.transferAttempts,
    transferBackoffMs: c.transferBackoffMs,
    transferStreamUpgrade: c.transferStreamUpgrade,
    transferDataConnections: c.transferDataConnections,
    replicate: c.replicate,
    replicationSweepMs: c.replicationSweepMs,
    replicationConcurrency: c.replicationConcurrency,
    syncCommitTimeoutMs: c.syncCommitTimeoutMs,
    failover: c.failover,
    failoverSweepMs: c.failoverSweepMs,
    restartGraceSeconds: c.restartGraceSeconds,
    pumpBinary: c.pumpBinary,
    dockerPluginSocket: c.dockerPluginSocket,
    dockerSocket: c.dockerSocket,
    dockerPluginUser: c.dockerPluginUser,
    flexVolumeDir: c.flexVolumeDir,
    flexVolumeDriver: c.flexVolumeDriver,
    ...clusterSettings(c),
  };
}

/** The node-to-node fields: the cluster port must differ from the others. */
function clusterSettings(
  c: z.output<typeof serverConfigFileSchema>,
): Pick<ServerConfig, 'clusterPort' | 'advertiseAddress' | 'nodeLeaseTtlSeconds'> {
  if (c.clusterPort !== 0 && [c.port, c.checkPort, c.tlsPort].includes(c.clusterPort)) {
    throw new DotmeshError('INVALID_ARGUMENT', 'invalid server config: clusterPort must differ from port, checkPort and tlsPort');
  }
  return { clusterPort: c.clusterPort, advertiseAddress: c.advertiseAddress, nodeLeaseTtlSeconds: c.nodeLeaseTtlSeconds };
}

/** The TLS fields: a given certificate needs its key; the port must differ from the others. */
function tlsSettings(
  c: z.output<typeof serverConfigFileSchema>,
): Pick<ServerConfig, 'tlsPort' | 'tlsCertFile' | 'tlsKeyFile' | 'tlsSubjectAltNames'> {
  const bad = (why: string) => new DotmeshError('INVALID_ARGUMENT', `invalid server config: ${why}`);
  if ((c.tlsCertFile === null) !== (c.tlsKeyFile === null)) throw bad('tlsCertFile and tlsKeyFile go together');
  if (c.tlsPort !== 0 && (c.tlsPort === c.port || c.tlsPort === c.checkPort))
    throw bad('tlsPort must differ from port and checkPort');
  return { tlsPort: c.tlsPort, tlsCertFile: c.tlsCertFile, tlsKeyFile: c.tlsKeyFile, tlsSubjectAltNames: c.tlsSubjectAltNames };
}

/** The certificate the server presents on `tlsPort`: the given one, else the generated `<stateDir>/tls/server.pem`. */
export function serverCertificateFile(config: Pick<ServerConfig, 'stateDir' | 'tlsCertFile'>): string {
  return config.tlsCertFile ?? join(config.stateDir, 'tls', 'server.pem');
}

/** The store fields, checked together: etcd needs endpoints, https needs the CA, a cert its key. */
function etcdSettings(
  c: z.output<typeof serverConfigFileSchema>,
): Pick<ServerConfig, 'store' | 'etcdEndpoints' | 'etcdCaFile' | 'etcdCertFile' | 'etcdKeyFile' | 'etcdPrefix'> {
  const bad = (why: string) => new DotmeshError('INVALID_ARGUMENT', `invalid server config: ${why}`);
  if (c.store === 'etcd') {
    // A node that joins learns the endpoints from the cluster when it joins.
    // A node that runs the first managed member learns them when it starts it.
    if (c.etcdEndpoints.length === 0 && c.join === null && c.etcdMember === null) throw bad('store "etcd" needs etcdEndpoints');
    const https = c.etcdEndpoints.some((e) => e.startsWith('https:'));
    if (https && c.etcdCaFile === null) throw bad('https etcd endpoints need etcdCaFile');
    if ((c.etcdCertFile === null) !== (c.etcdKeyFile === null)) throw bad('etcdCertFile and etcdKeyFile go together');
  }
  return {
    store: c.store,
    etcdEndpoints: c.etcdEndpoints,
    etcdCaFile: c.etcdCaFile,
    etcdCertFile: c.etcdCertFile,
    etcdKeyFile: c.etcdKeyFile,
    etcdPrefix: c.etcdPrefix,
  };
}

/** Parses the text of a config file (JSON). */
export function parseServerConfigText(text: string): ServerConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DotmeshError('INVALID_ARGUMENT', `invalid server config: not JSON (${(e as Error).message})`);
  }
  return resolveServerConfig(json);
}

/**
 * Where the FlexVolume driver goes: `DOTMESH_FLEXVOLUME_DIR` when set ("" or "none": nowhere),
 * else the config's `flexVolumeDir`, else — the field absent — the original's default dir when
 * running under Kubernetes (`KUBERNETES_SERVICE_HOST` set) and nowhere outside it.
 */
export function resolveFlexVolumeDir(
  config: Pick<ServerConfig, 'flexVolumeDir'>,
  env: Readonly<Record<string, string | undefined>>,
): string | null {
  const fromEnv = env.DOTMESH_FLEXVOLUME_DIR;
  if (fromEnv !== undefined) {
    if (fromEnv === '' || fromEnv === 'none') return null;
    if (!fromEnv.startsWith('/')) {
      throw new DotmeshError(
        'INVALID_ARGUMENT',
        `DOTMESH_FLEXVOLUME_DIR must be an absolute path, got ${JSON.stringify(fromEnv.slice(0, 200))}`,
      );
    }
    return fromEnv;
  }
  if (config.flexVolumeDir !== undefined) return config.flexVolumeDir;
  return env.KUBERNETES_SERVICE_HOST ? DEFAULT_FLEXVOLUME_DIR : null;
}

/** The full default config for a pool dir. */
export function defaultServerConfig(poolDir: string = DEFAULT_POOL_DIR): ServerConfig {
  return resolveServerConfig({ poolDir });
}

/** Path of the config file `dm cluster init` writes for a pool dir's default state dir. */
export function serverConfigPath(config: Pick<ServerConfig, 'stateDir'>): string {
  return join(config.stateDir, CONFIG_FILE_NAME);
}

/** Shape of the initial-admin file (see `ServerConfig.initialAdminFile`). */
export const initialAdminSchema = z.object({
  password: z.string().min(1),
  apiKey: z.string().min(1),
  replaceExisting: z.boolean().optional(),
});
export type InitialAdmin = z.infer<typeof initialAdminSchema>;
