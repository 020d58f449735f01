import { resolve } from 'node:path';
import {
  DEFAULT_CHECK_PORT,
  DEFAULT_CLUSTER_PORT,
  DEFAULT_DOCKER_PLUGIN_SOCKET,
  DEFAULT_DOCKER_SOCKET,
  DEFAULT_ETCD_CLIENT_PORT,
  DEFAULT_ETCD_PEER_PORT,
  DEFAULT_LISTEN_HOST,
  DEFAULT_POOL_DIR,
  DEFAULT_POOL_SIZE,
  DEFAULT_RPC_PORT,
  DEFAULT_TLS_PORT,
  parseSize,
} from '@dotmesh/rpc/server-defaults';
import type { Command } from 'commander';
import type { InitSetting } from '../cluster/init.ts';
import { action, type CliApp, usage } from '../command.ts';
import { registerBackup } from './cluster-backup.ts';
import { registerJoin } from './cluster-join.ts';

/**
 * `dm cluster init|start|stop|reset|grow|upgrade`: set up, start, stop or tear down the
 * single-node cluster on this host (root).
 */
export function portOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw usage(`invalid port ${JSON.stringify(value)}`);
  return n;
}

export interface InitFlags {
  usePoolDir: string;
  poolSize: string;
  sparse?: boolean;
  useExistingMount?: string;
  port: number;
  checkPort: number;
  listen: string;
  serverBin?: string;
  systemd: boolean;
  store: string;
  etcdEndpoints?: string;
  etcdCaFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  tlsPort: number;
  tlsCert?: string;
  tlsKey?: string;
  dockerPluginSocket: string;
  dockerSocket: string;
  newAdminCredentials?: boolean;
  clusterPort?: number;
  advertiseAddress?: string;
  clusterCaCert?: string;
  clusterCaKey?: string;
  etcdClientPort: number;
  etcdPeerPort: number;
  etcdBin?: string;
}

/** Which server config setting each init flag sets (commander's attribute name → setting). */
const INIT_SETTINGS: Readonly<Record<string, InitSetting>> = {
  poolSize: 'poolSizeBytes',
  sparse: 'sparse',
  useExistingMount: 'existingMount',
  port: 'port',
  checkPort: 'checkPort',
  listen: 'listenHost',
  tlsPort: 'tlsPort',
  tlsCert: 'tlsCertFile',
  tlsKey: 'tlsKeyFile',
  dockerPluginSocket: 'dockerPluginSocket',
  dockerSocket: 'dockerSocket',
  store: 'store',
  etcdEndpoints: 'etcdEndpoints',
  etcdCaFile: 'etcdCaFile',
  etcdCertFile: 'etcdCertFile',
  etcdKeyFile: 'etcdKeyFile',
  clusterPort: 'clusterPort',
  advertiseAddress: 'advertiseAddress',
  etcdClientPort: 'etcdMember',
  etcdPeerPort: 'etcdMember',
  etcdBin: 'etcdMember',
};

/** The store's settings, which go together (with the cluster port and the managed etcd member). */
export const STORE_SETTINGS: readonly InitSetting[] = [
  'store',
  'etcdEndpoints',
  'etcdCaFile',
  'etcdCertFile',
  'etcdKeyFile',
  'clusterPort',
  'etcdMember',
];

/** The settings whose flags were given on the command line (not left at their defaults). */
export function givenSettings(cmd: Command): Set<InitSetting> {
  const given = new Set<InitSetting>();
  for (const [flag, setting] of Object.entries(INIT_SETTINGS)) if (cmd.getOptionValueSource(flag) === 'cli') given.add(setting);
  // The store's settings go together: naming the store (or an etcd flag) sets all of them.
  // ... and the cluster port with them (a node of several nodes needs etcd; see clusterFlags).
  if (['store', 'etcdEndpoints', 'etcdCaFile', 'etcdCertFile', 'etcdKeyFile'].some((s) => given.has(s as InitSetting))) {
    for (const s of STORE_SETTINGS) given.add(s);
  }
  if (given.has('tlsCertFile') || given.has('tlsKeyFile')) for (const s of ['tlsCertFile', 'tlsKeyFile'] as const) given.add(s);
  return given;
}

/** The pool, ports and server of the node from the flags `addNodeOptions` defines. */
export function nodeFlags(f: InitFlags) {
  return {
    poolDir: resolve(f.usePoolDir),
    poolSizeBytes: parseSize(f.poolSize),
    sparse: f.sparse === true,
    existingMount: f.useExistingMount ?? null,
    port: f.port,
    checkPort: f.checkPort,
    listenHost: f.listen,
    serverBin: f.serverBin,
    systemd: f.systemd,
  };
}

/** The Docker part of the server config from the init flags ("none": no plugin). */
export function dockerFlags(f: InitFlags) {
  return {
    dockerPluginSocket: f.dockerPluginSocket === 'none' ? null : resolve(f.dockerPluginSocket),
    dockerSocket: resolve(f.dockerSocket),
  };
}

/** The TLS part of the server config from the init flags. */
export function tlsFlags(f: InitFlags) {
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw usage('--tls-cert and --tls-key go together');
  return {
    tlsPort: f.tlsPort,
    tlsCertFile: f.tlsCert === undefined ? null : resolve(f.tlsCert),
    tlsKeyFile: f.tlsKey === undefined ? null : resolve(f.tlsKey),
  };
}

/**
 * The node-to-node part from the init flags: a node on etcd is a node of a cluster of several
 * nodes, with its endpoint on --cluster-port (default DEFAULT_CLUSTER_PORT); on the embedded
 * store there is none. The cluster CA flags go together.
 */
function clusterFlags(f: InitFlags) {
  if ((f.clusterCaCert === undefined) !== (f.clusterCaKey === undefined)) {
    throw usage('--cluster-ca-cert and --cluster-ca-key go together');
  }
  return {
    clusterPort: f.clusterPort ?? (f.store === 'etcd' ? DEFAULT_CLUSTER_PORT : 0),
    advertiseAddress: f.advertiseAddress ?? null,
    ...(f.clusterCaCert !== undefined && f.clusterCaKey !== undefined
      ? { clusterCa: { cert: resolve(f.clusterCaCert), key: resolve(f.clusterCaKey) } }
      : {}),
  };
}

/** The managed etcd member's flags (its binary is looked up when the node runs one). */
export function etcdMemberFlags(f: InitFlags) {
  return {
    etcdMemberPorts: { clientPort: f.etcdClientPort, peerPort: f.etcdPeerPort },
    etcdBin: f.etcdBin === undefined ? undefined : resolve(f.etcdBin),
  };
}

/** The store part of the server config from the init flags (validated by the config schema). */
function storeFlags(f: InitFlags) {
  if (f.store !== 'embedded' && f.store !== 'etcd') {
    throw usage(`--store must be embedded or etcd, got ${JSON.stringify(f.store)}`);
  }
  const endpoints = (f.etcdEndpoints ?? '').split(',').map((e) => e.trim());
  const abs = (file: string | undefined) => (file === undefined ? null : resolve(file));
  return {
    store: f.store,
    etcdEndpoints: endpoints.filter((e) => e !== ''),
    etcdCaFile: abs(f.etcdCaFile),
    etcdCertFile: abs(f.etcdCertFile),
    etcdKeyFile: abs(f.etcdKeyFile),
  } as const;
}

/** The options of the node this host runs: `dm cluster init` and `dm cluster join` take them. */
export function addNodeOptions(cmd: Command): Command {
  return cmd
    .option('--use-pool-dir <dir>', 'directory for the pool file and server state', DEFAULT_POOL_DIR)
    .option('--pool-size <size>', 'size of a new pool file (e.g. 10G, 512M)', DEFAULT_POOL_SIZE)
    .option('--sparse', 'create the pool file sparse instead of preallocating it')
    .option('--use-existing-mount <dir>', 'use this mounted btrfs filesystem instead of a pool file')
    .option('--port <n>', 'API port', portOption, DEFAULT_RPC_PORT)
    .option('--check-port <n>', 'liveness port (GET /check)', portOption, DEFAULT_CHECK_PORT)
    .option('--listen <host>', 'address to listen on', DEFAULT_LISTEN_HOST)
    .option('--tls-port <n>', 'HTTPS API port, 0 = none', (v: string) => (v === '0' ? 0 : portOption(v)), DEFAULT_TLS_PORT)
    .option('--tls-cert <file>', 'PEM certificate for HTTPS instead of one issued by a generated cluster CA (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option(
      '--docker-plugin-socket <path>',
      'serve the Docker volume plugin here; its name without .sock is the driver name; none = no plugin',
      DEFAULT_DOCKER_PLUGIN_SOCKET,
    )
    .option('--docker-socket <path>', 'Docker Engine API socket (containers using dots are tracked there)', DEFAULT_DOCKER_SOCKET)
    .option(
      '--etcd-client-port <n>',
      "client port (https) of this host's managed etcd member, when it runs one",
      portOption,
      DEFAULT_ETCD_CLIENT_PORT,
    )
    .option('--etcd-peer-port <n>', "peer port (https) of this host's managed etcd member", portOption, DEFAULT_ETCD_PEER_PORT)
    .option('--etcd-bin <path>', 'the etcd binary (3.4 or later) of a managed member (default: etcd on PATH)')
    .option(
      '--server-bin <path>',
      'dotmesh-server to run (default: $DOTMESH_SERVER_BIN, the one this cluster ran last, next to dm, or on PATH)',
    )
    .option('--no-systemd', 'do not install a systemd unit');
}

export function register(program: Command, app: CliApp): void {
  const cluster = program.command('cluster').summary('Set up, start, stop, upgrade or tear down the dotmesh server on this host');
  const init = cluster
    .command('init')
    .summary('Start a single-node dotmesh cluster on this host (or bring an existing one back)')
    .description(
      `Starts a single-node dotmesh cluster on this host: a btrfs pool, the server and the remote 'local'. Must run as root.

On a pool dir that has a cluster already (after a crash, a reboot or 'dm cluster stop'), it brings that cluster back: its config is kept (only the options given here change it), and so are the admin password, API keys, users and TLS certificate, so remotes and pins elsewhere keep working. The admin's password and API key change only with --new-admin-credentials.

With --store etcd it starts the first node of a cluster meant to grow: without --etcd-endpoints this host runs a managed etcd member (TLS with certificates of the cluster CA, its data in <pool dir>/server/etcd/, started and stopped with the server; joining hosts become members until there are three); with them, on that etcd: every node answers for every dot, and the nodes talk to each other on --cluster-port with certificates of one cluster CA, which this node makes (<pool dir>/server/tls/ca.pem and ca-key.pem). Further hosts join with 'dm cluster token create' here and 'dm cluster join' there. (--cluster-ca-cert and --cluster-ca-key give a node the cluster's CA by hand instead.)`,
    )
    .usage('[--use-pool-dir <dir>] [--pool-size <size>] [options]')
    .argument('[args...]');
  addNodeOptions(init)
    .option(
      '--new-admin-credentials',
      "replace an existing cluster's admin password and API key by new ones (remotes using the old key stop working)",
    )
    .option('--store <kind>', 'cluster store: embedded (a file beside the pool) or etcd', 'embedded')
    .option('--etcd-endpoints <urls>', 'etcd client URLs, comma-separated (with --store etcd; none: a managed etcd member)')
    .option('--etcd-ca-file <file>', 'PEM CA of the etcd server certificates (https endpoints)')
    .option('--etcd-cert-file <file>', 'PEM client certificate for etcd (with --etcd-key-file)')
    .option('--etcd-key-file <file>', 'PEM key of the etcd client certificate')
    .option(
      '--cluster-port <n>',
      `node-to-node endpoint (mutual TLS) of a node of several; 0 = none (default with --store etcd: ${DEFAULT_CLUSTER_PORT})`,
      (v: string) => (v === '0' ? 0 : portOption(v)),
    )
    .option('--advertise-address <ip>', "the address other nodes reach this node at (default: --listen's, else the first IPv4)")
    .option('--cluster-ca-cert <file>', "the cluster's CA certificate, to join a cluster (temporary: with --cluster-ca-key)")
    .option('--cluster-ca-key <file>', "the cluster's CA private key (copied into the state dir, 0600)")
    .action(
      action<InitFlags>(app, async (ctx, args, f, cmd) => {
        if (args.length > 0) throw usage('dm cluster init takes no arguments (see --help for its options).');
        // Loaded on demand: the cluster code (and the config schema) is not needed by other commands.
        const { clusterInit, renderClusterInit } = await import('../cluster/init.ts');
        const result = await clusterInit(ctx, {
          ...nodeFlags(f),
          ...storeFlags(f),
          ...tlsFlags(f),
          ...dockerFlags(f),
          ...clusterFlags(f),
          ...etcdMemberFlags(f),
          // An init is never a join: a join that was set up on this pool dir is dropped.
          given: new Set([...givenSettings(cmd), 'join']),
          newAdminCredentials: f.newAdminCredentials === true,
        });
        ctx.reporter.result(result, renderClusterInit);
      }),
    );
  cluster
    .command('start')
    .summary('Start the configured dotmesh server of this host again (after stop, a crash or a reboot)')
    .description(
      `Starts this host's dotmesh server again on the config 'dm cluster init' wrote, with the server binary the cluster ran last: after 'dm cluster stop', a crash or a reboot (it mounts the pool again if needed). Nothing is made new: the admin password, API keys, users and TLS certificate stay, so remotes elsewhere keep working. Does nothing when the server is running. Under systemd it starts the unit. Must run as root.`,
    )
    .usage('[--use-pool-dir <dir>] [--server-bin <path>]')
    .argument('[args...]')
    .option('--use-pool-dir <dir>', 'directory given to cluster init', DEFAULT_POOL_DIR)
    .option(
      '--server-bin <path>',
      'dotmesh-server to run (default: $DOTMESH_SERVER_BIN, the one this cluster ran last, next to dm, or on PATH)',
    )
    .action(
      action<{ usePoolDir: string; serverBin?: string }>(app, async (ctx, args, f) => {
        if (args.length > 0) throw usage('dm cluster start takes no arguments (see --help for its options).');
        const { clusterStart, renderClusterStart } = await import('../cluster/start.ts');
        ctx.reporter.result(
          await clusterStart(ctx, { poolDir: resolve(f.usePoolDir), serverBin: f.serverBin }),
          renderClusterStart,
        );
      }),
    );
  cluster
    .command('stop')
    .summary('Stop the dotmesh server of this host gracefully (the pool stays mounted; dm cluster start brings it back)')
    .description(
      `Stops this host's dotmesh server gracefully and waits until it is gone (SIGTERM, SIGKILL only after 15 s; under systemd, 'systemctl stop'). The pool stays mounted, so processes and containers using dots keep their files; dm commands need the server until 'dm cluster start'. Unlike 'dm cluster reset' it forgets nothing. Does nothing when the server is not running. Must run as root.`,
    )
    .usage('[--use-pool-dir <dir>]')
    .argument('[args...]')
    .option('--use-pool-dir <dir>', 'directory given to cluster init', DEFAULT_POOL_DIR)
    .action(
      action<{ usePoolDir: string }>(app, async (ctx, args, f) => {
        if (args.length > 0) throw usage('dm cluster stop takes no arguments (see --help for its options).');
        const { clusterStop, renderClusterStop } = await import('../cluster/stop.ts');
        ctx.reporter.result(await clusterStop(ctx, { poolDir: resolve(f.usePoolDir) }), renderClusterStop);
      }),
    );
  cluster
    .command('reset')
    .summary('Stop the dotmesh server on this host and forget it (keeps the pool unless --destroy-data)')
    .argument('[args...]')
    .option('--use-pool-dir <dir>', 'directory given to cluster init', DEFAULT_POOL_DIR)
    .option('--destroy-data', 'also destroy the pool: every dot, branch and commit on this host')
    .option('--server-bin <path>', 'dotmesh-server to run destroy-pool with')
    .action(
      action<{ usePoolDir: string; destroyData?: boolean; serverBin?: string }>(app, async (ctx, args, f) => {
        if (args.length > 0) throw usage('dm cluster reset takes no arguments (see --help for its options).');
        const { clusterReset, renderClusterReset } = await import('../cluster/reset.ts');
        const result = await clusterReset(ctx, {
          poolDir: f.usePoolDir,
          destroyData: f.destroyData === true,
          serverBin: f.serverBin,
        });
        ctx.reporter.result(result, renderClusterReset);
      }),
    );
  cluster
    .command('grow')
    .summary("Grow the current remote's pool online (the server grows its pool file)")
    .argument('[args...]')
    .requiredOption('--pool-size <size>', 'the new size of the pool (e.g. 20G); pools only grow')
    .action(
      action<{ poolSize: string }>(app, async (ctx, args, f) => {
        if (args.length > 0) throw usage('dm cluster grow takes no arguments (give the size with --pool-size).');
        const { clusterGrow, renderClusterGrow } = await import('../cluster/grow.ts');
        ctx.reporter.result(await clusterGrow(ctx, parseSize(f.poolSize)), renderClusterGrow);
      }),
    );
  cluster
    .command('upgrade')
    .summary("Restart this host's dotmesh-server as a newer version; dots stay mounted and in use")
    .argument('[args...]')
    .option('--use-pool-dir <dir>', 'directory given to cluster init', DEFAULT_POOL_DIR)
    .option('--server-bin <path>', 'the new dotmesh-server (default: $DOTMESH_SERVER_BIN, next to dm, or on PATH)')
    .action(
      action<{ usePoolDir: string; serverBin?: string }>(app, async (ctx, args, f) => {
        if (args.length > 0) throw usage('dm cluster upgrade takes no arguments (see --help for its options).');
        const { clusterUpgrade, renderClusterUpgrade } = await import('../cluster/upgrade.ts');
        const result = await clusterUpgrade(ctx, { poolDir: f.usePoolDir, serverBin: f.serverBin });
        ctx.reporter.result(result, renderClusterUpgrade);
      }),
    );
  registerBackup(cluster, app);
  registerJoin(cluster, app);
}
