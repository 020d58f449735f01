import type { ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DotmeshError } from '@dotmesh/core';
import {
  type EtcdMemberStatus,
  type InitialAdmin,
  initialAdminSchema,
  resolveServerConfig,
  type ServerConfig,
} from '@dotmesh/rpc';
import { DotmeshClient, rpcUrl } from '@dotmesh/rpc/client';
import { newRemote } from '../config.ts';
import type { CommandContext } from '../context.ts';
import { prettySize } from '../format.ts';
import { type ClusterCaFiles, installClusterCa } from './cluster-ca.ts';
import { generateAdminCredentials } from './credentials.ts';
import { readEtcdMemberStatus, stopLeftoverEtcd } from './etcd-member.ts';
import { preflight } from './preflight.ts';
import { waitForServer } from './server-process.ts';
import { writeServerRecord } from './server-record.ts';
import { launchServer, portsInUse, serveArgv, serverToRun } from './service.ts';
import { loadServerConfig, localHost, startCommand } from './state.ts';
import { btrfsInKernel, exists, freeBytesAt, isBtrfsMount, pid1IsSystemd, runningPid, which } from './system.ts';
import { installUnit } from './systemd.ts';
import { clusterCaPin, pinLocalServer } from './tls.ts';

/**
 * `dm cluster init`: brings up a single-node cluster on this host, or brings an existing one
 * back (after a crash, a reboot or `dm cluster stop`) with the same identity. Steps: preflight
 * (root, not already running, btrfs, mkfs.btrfs, free space, free ports); the server config —
 * on a pool dir that has one, that config with only the options given on the command line
 * changed (so the same flags, or none, give the same cluster); the state dir (0700) with
 * initial admin credentials (0600) and the config; the server started (systemd or a detached
 * process) and pinged until ready; remote `local` saved as current; a systemd unit enabled
 * when PID 1 is systemd.
 *
 * Identity: the initial credentials only seed a store that has no admin yet. When the store
 * has one (init again on an existing cluster), the server keeps its password and API keys,
 * every user and the TLS certificate; init then keeps the `local` remote's key if the server
 * accepts it, and fails with what to do if this dm config has no key it accepts.
 * `newAdminCredentials` replaces the admin's password and API key instead.
 */
export interface ClusterInitOptions {
  readonly poolDir: string;
  readonly poolSizeBytes: number;
  readonly sparse: boolean;
  readonly existingMount: string | null;
  readonly port: number;
  readonly checkPort: number;
  readonly listenHost: string;
  readonly serverBin: string | undefined;
  readonly systemd: boolean;
  /** The cluster store (default embedded); etcd fields only with 'etcd'. */
  readonly store?: 'embedded' | 'etcd';
  readonly etcdEndpoints?: readonly string[];
  readonly etcdCaFile?: string | null;
  readonly etcdCertFile?: string | null;
  readonly etcdKeyFile?: string | null;
  /** HTTPS API port (0 or absent: none; the flag's default is DEFAULT_TLS_PORT) and a given certificate. */
  readonly tlsPort?: number;
  readonly tlsCertFile?: string | null;
  readonly tlsKeyFile?: string | null;
  /** The Docker volume plugin socket (null: none) and the Engine API socket; absent: the defaults. */
  readonly dockerPluginSocket?: string | null;
  readonly dockerSocket?: string;
  /**
   * The settings given on the command line. On a pool dir with a server config only these
   * change it; the others keep their values there. Absent: every setting counts as given.
   */
  readonly given?: ReadonlySet<InitSetting>;
  /** Replace the admin's password and API key of an existing cluster by new ones. */
  readonly newAdminCredentials?: boolean;
  /**
   * A node of a cluster of several nodes (store etcd): its node-to-node endpoint's port (0 or
   * absent: none) and the address the other nodes reach it at (null or absent: the server picks).
   */
  readonly clusterPort?: number;
  readonly advertiseAddress?: string | null;
  /** The cluster's CA, copied into `<stateDir>/tls/` before the server starts (see cluster-ca.ts). */
  readonly clusterCa?: ClusterCaFiles;
  /**
   * `dm cluster join`: the server joins the cluster at its start through this node endpoint,
   * checking the CA against the pin, with this token (left for it in the 0600 `joinTokenFile`,
   * which it deletes). No admin credentials are made: the cluster has its admin.
   */
  readonly join?: { readonly address: string; readonly caHash: string; readonly token: string };
  /**
   * The ports of a managed etcd member, run by this node when `--store etcd` has no endpoints
   * (the first node), or when it joins a cluster whose etcd Dotmesh runs and that has fewer than
   * three members; `etcdBin` (default: etcd on PATH).
   */
  readonly etcdMemberPorts?: { readonly clientPort: number; readonly peerPort: number };
  readonly etcdBin?: string | undefined;
}

/** The options of `dm cluster init` that are server config fields. */
export type InitSetting =
  | 'poolSizeBytes'
  | 'sparse'
  | 'existingMount'
  | 'port'
  | 'checkPort'
  | 'listenHost'
  | 'store'
  | 'etcdEndpoints'
  | 'etcdCaFile'
  | 'etcdCertFile'
  | 'etcdKeyFile'
  | 'tlsPort'
  | 'tlsCertFile'
  | 'tlsKeyFile'
  | 'dockerPluginSocket'
  | 'dockerSocket'
  | 'clusterPort'
  | 'advertiseAddress'
  | 'join'
  | 'etcdMember';

export interface ClusterInitResult {
  serverConfigFile: string;
  serverBin: string;
  serverVersion: string;
  pid: number | null;
  url: string;
  remote: string;
  /**
   * `new`: the admin got the credentials made now; `kept`: the cluster kept its admin (and every
   * key); `unknown`: a node that joined, and this dm config has no key the cluster accepts.
   */
  admin: 'new' | 'kept' | 'unknown';
  /** The admin password beside the dm config; null when this dm config has no copy (a kept admin). */
  adminPasswordFile: string | null;
  systemdUnit: string | null;
  /** How the server comes back after a reboot or a crash when no systemd unit runs it. */
  startCommand: string;
  config: ServerConfig;
  /** SHA-256 fingerprint of the HTTPS certificate (null: no HTTPS). */
  tlsFingerprint: string | null;
  /**
   * How known_servers pins this host's HTTPS port: by the cluster CA that issued the
   * certificate (`caPin`), or by the certificate's fingerprint (a given certificate).
   */
  pinnedBy: 'cluster-ca' | 'certificate' | null;
  /** `dm cluster join`: the node endpoint it joined through (null: init). */
  joinedThrough: string | null;
  /** The pin of the cluster CA that issued the HTTPS certificate (null: no HTTPS, or a given certificate). */
  caPin: string | null;
  /** This node's managed etcd member once it votes (null: it runs none). */
  etcdMember: EtcdMemberStatus | null;
}

/** Whether this node runs a managed etcd member: the first node of `--store etcd` without endpoints, or a joining node. */
function wantsEtcdMember(o: ClusterInitOptions): boolean {
  return o.etcdMemberPorts !== undefined && o.store === 'etcd' && (o.join !== undefined || (o.etcdEndpoints ?? []).length === 0);
}

/** The settings init asks for, as server config fields (`etcdBin`: the etcd binary a member runs). */
function wantedSettings(o: ClusterInitOptions, etcdBin: string | null): Partial<Record<InitSetting, unknown>> {
  return {
    poolSizeBytes: o.poolSizeBytes,
    sparse: o.sparse,
    existingMount: o.existingMount,
    listenHost: o.listenHost,
    port: o.port,
    checkPort: o.checkPort,
    store: o.store ?? 'embedded',
    etcdEndpoints: [...(o.etcdEndpoints ?? [])],
    etcdCaFile: o.etcdCaFile ?? null,
    etcdCertFile: o.etcdCertFile ?? null,
    etcdKeyFile: o.etcdKeyFile ?? null,
    tlsPort: o.tlsPort ?? 0,
    tlsCertFile: o.tlsCertFile ?? null,
    tlsKeyFile: o.tlsKeyFile ?? null,
    ...(o.dockerPluginSocket === undefined ? {} : { dockerPluginSocket: o.dockerPluginSocket }),
    ...(o.dockerSocket === undefined ? {} : { dockerSocket: o.dockerSocket }),
    clusterPort: o.clusterPort ?? 0,
    advertiseAddress: o.advertiseAddress ?? null,
    join: o.join ? { address: o.join.address, caHash: o.join.caHash } : null,
    etcdMember: etcdBin !== null && o.etcdMemberPorts ? { bin: etcdBin, ...o.etcdMemberPorts } : null,
  };
}

/**
 * The etcd binary of a managed member: the one given, else etcd on PATH. The first node needs
 * one (UNAVAILABLE); a joining host without one joins as a client of the store only (null).
 */
async function etcdBinFor(ctx: CommandContext, o: ClusterInitOptions): Promise<string | null> {
  if (!wantsEtcdMember(o)) return null;
  const bin = o.etcdBin ?? (await which('etcd', ctx.env.PATH));
  if (bin !== null && (await exists(bin))) return bin;
  if (o.join) {
    ctx.reporter.notice('No etcd binary here (--etcd-bin, or etcd on PATH): this node joins without an etcd member.');
    return null;
  }
  throw new DotmeshError(
    'UNAVAILABLE',
    `no etcd binary ${o.etcdBin ?? 'on PATH'}: a cluster without --etcd-endpoints runs a managed etcd member`,
    {
      hint: 'install etcd 3.4 or later (Debian: apt-get install etcd-server) or give its path with --etcd-bin; or give the endpoints of an etcd you run with --etcd-endpoints',
    },
  );
}

/** A node of several (a cluster port) needs the shared store; the cluster CA is for such a node. */
function checkClusterSettings(config: ServerConfig, o: ClusterInitOptions): void {
  if (config.clusterPort !== 0 && config.store !== 'etcd') {
    throw new DotmeshError('INVALID_ARGUMENT', 'a node of a cluster of several nodes (--cluster-port) needs the shared store', {
      hint: 'give --store etcd --etcd-endpoints <urls> (every node of the cluster the same), or --cluster-port 0',
    });
  }
  if (o.clusterCa && config.clusterPort === 0) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      '--cluster-ca-cert and --cluster-ca-key are for a node of a cluster of several nodes',
      {
        hint: 'give --store etcd --etcd-endpoints <urls> (the node-to-node endpoint then listens on --cluster-port)',
      },
    );
  }
}

/**
 * The server config init writes: with no `previous` one, the wanted settings (defaults for the
 * rest); else `previous` with only the `given` settings changed (every field it has — edited
 * ones such as tlsSubjectAltNames, or a size `dm cluster grow` wrote — is kept).
 */
export function initServerConfig(
  poolDir: string,
  previous: ServerConfig | null,
  wanted: Partial<Record<InitSetting, unknown>>,
  given: ReadonlySet<InitSetting> | undefined,
): ServerConfig {
  if (previous === null) return resolveServerConfig({ ...wanted, poolDir });
  const changed = Object.entries(wanted).filter(([k]) => given === undefined || given.has(k as InitSetting));
  return resolveServerConfig({ ...previous, ...Object.fromEntries(changed), poolDir: previous.poolDir });
}

/** Initial credentials: an unused file left by an init that failed before the server read it, else new ones. */
async function credentialsFor(config: ServerConfig): Promise<InitialAdmin> {
  const text = await readFile(config.initialAdminFile, 'utf8').catch(() => null);
  if (text !== null) {
    try {
      const parsed = initialAdminSchema.safeParse(JSON.parse(text));
      if (parsed.success) return { password: parsed.data.password, apiKey: parsed.data.apiKey };
    } catch {
      // not JSON: make new ones
    }
  }
  return generateAdminCredentials();
}

async function fileSize(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

export async function clusterInit(ctx: CommandContext, o: ClusterInitOptions): Promise<ClusterInitResult> {
  const say = (line: string) => ctx.reporter.notice(line);
  say('Checking suitable environment...');
  const previous = await loadServerConfig(o.poolDir);
  let config = initServerConfig(
    o.poolDir,
    previous.existing ? previous.config : null,
    wantedSettings(o, await etcdBinFor(ctx, o)),
    o.given,
  );
  checkClusterSettings(config, o);
  const serverConfigFile = previous.file;
  // A single-node cluster moving from the embedded store to etcd takes its store along.
  const moving =
    previous.existing &&
    previous.config.store === 'embedded' &&
    config.store === 'etcd' &&
    (await exists(previous.config.storeFile));
  if (moving) {
    config = { ...config, importStoreFile: previous.config.storeFile };
    say(
      `Moving the cluster store ${previous.config.storeFile} into etcd at ${config.etcdEndpoints.join(',') || "this host's managed etcd member"} (the server copies it at start)`,
    );
  }
  const poolFileSize = config.existingMount ? null : await fileSize(config.poolFile);
  if (poolFileSize !== null && poolFileSize !== config.poolSizeBytes) {
    if (o.given === undefined || o.given.has('poolSizeBytes')) {
      say(`The pool file ${config.poolFile} exists (${prettySize(poolFileSize)}): --pool-size applies to new pools only.`);
      say(`(grow it with 'dm cluster grow --pool-size <size>' while the server runs)`);
    }
    config = { ...config, poolSizeBytes: poolFileSize };
  }
  const pid = await runningPid(config.pidFile);
  // An etcd member a killed server left running holds its ports: the server starts it again.
  if (pid === null) await stopLeftoverEtcd(config);
  const reusePool = poolFileSize !== null;
  const problem = preflight(
    {
      uid: ctx.runtime.uid,
      runningPid: pid,
      btrfsInKernel: await btrfsInKernel(),
      mkfsBtrfs: config.existingMount ? null : await which('mkfs.btrfs', ctx.env.PATH),
      freeBytes: config.existingMount || config.sparse || reusePool ? null : await freeBytesAt(config.poolDir),
      portsInUse: pid !== null ? [] : await portsInUse(config),
      existingMountIsBtrfs: config.existingMount ? await isBtrfsMount(config.existingMount) : null,
    },
    config,
  );
  if (problem) throw problem;
  const { serverBin, version } = await serverToRun(ctx, config, o.serverBin);

  await mkdir(config.poolDir, { recursive: true, mode: 0o755 });
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  await chmod(config.stateDir, 0o700);
  if (o.clusterCa) {
    const { changed } = await installClusterCa(config.stateDir, o.clusterCa);
    say(
      changed
        ? `Installed the cluster CA ${o.clusterCa.cert} in ${join(config.stateDir, 'tls')} (this node's certificates are issued again by it)`
        : `The cluster CA ${o.clusterCa.cert} is this node's CA already`,
    );
  }
  const creds = await credentialsFor(config);
  const seed: InitialAdmin = o.newAdminCredentials ? { ...creds, replaceExisting: true } : creds;
  if (o.join) {
    await rm(config.initialAdminFile, { force: true });
    await rm(config.joinTokenFile, { force: true });
    await writeFile(config.joinTokenFile, `${o.join.token}\n`, { mode: 0o600 });
    await chmod(config.joinTokenFile, 0o600);
  } else {
    await writeFile(config.initialAdminFile, JSON.stringify(seed), { mode: 0o600 });
    await chmod(config.initialAdminFile, 0o600);
  }
  await writeFile(serverConfigFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  say(
    config.existingMount
      ? `Using the btrfs filesystem mounted at ${config.existingMount}`
      : `Pool: ${config.poolFile} (${prettySize(config.poolSizeBytes)}${config.sparse ? ', sparse' : ''}${reusePool ? ', existing' : ''}), mounted at ${config.mountPoint}`,
  );
  say(`Wrote ${serverConfigFile}${previous.existing ? ' (its settings kept, the options given changed)' : ''}`);

  if (o.systemd && (await pid1IsSystemd())) await installUnit(serveArgv(serverBin, serverConfigFile, ctx.runtime.nodePath));
  const { child, systemdUnit } = await launchServer(ctx, { serverBin, configFile: serverConfigFile, config });
  say(
    `Started dotmesh-server ${version}${child ? ` (pid ${child.pid ?? '?'})` : ` (systemd unit ${systemdUnit})`}, log: ${config.logFile}`,
  );
  const host = localHost(config.listenHost);
  const url = rpcUrl(host, config.port);
  say(`Waiting for dotmesh-server to answer at ${url}...`);
  const dmConfig = await ctx.loadConfig();
  const previousRemote = dmConfig.Remotes.local;
  const admin = o.join
    ? await joinedAdminKey(ctx, { config, url, child, localKey: previousRemote?.ApiKey })
    : await adminKey(ctx, { config, url, child, seed: creds.apiKey, localKey: previousRemote?.ApiKey });
  await writeServerRecord(config, { serverBin, version });

  if (admin.kind !== 'unknown') {
    dmConfig.Remotes.local = {
      ...(previousRemote ?? newRemote('admin', host, config.port, admin.apiKey)),
      User: 'admin',
      Hostname: host,
      Port: config.port,
      ApiKey: admin.apiKey,
    };
    dmConfig.CurrentRemote = 'local';
    await ctx.saveConfig();
  }
  const passwordFile = join(dirname(ctx.options.configPath), 'admin-password.txt');
  if (admin.kind === 'new') {
    await rm(passwordFile, { force: true });
    await writeFile(passwordFile, creds.password, { mode: 0o400 });
  }
  const localPin = await pinLocalServer(ctx, config, host);
  // The server wrote what it learned at start (a joined node's store, a managed member's endpoints).
  const running = (await loadServerConfig(o.poolDir)).config;
  return {
    serverConfigFile,
    serverBin,
    serverVersion: version,
    pid: child?.pid ?? (await runningPid(config.pidFile)),
    url,
    remote: 'local',
    admin: admin.kind,
    adminPasswordFile: (await exists(passwordFile)) ? passwordFile : null,
    systemdUnit,
    startCommand: startCommand(o.poolDir),
    config: running,
    tlsFingerprint: localPin?.fingerprint ?? null,
    pinnedBy: localPin === null ? null : localPin.caPin === null ? 'certificate' : 'cluster-ca',
    joinedThrough: o.join?.address ?? null,
    caPin: await clusterCaPin(config),
    etcdMember: running.etcdMember ? await readEtcdMemberStatus(running) : null,
  };
}

/**
 * Waits for the server, then finds the admin key it accepts: the new credentials (`new`: the
 * store had no admin, or they replaced it), else the `local` remote's key (`kept`: the cluster
 * kept its admin). UNAUTHENTICATED, with what to do, when it accepts neither.
 */
async function adminKey(
  ctx: CommandContext,
  o: { config: ServerConfig; url: string; child: ChildProcess | null; seed: string; localKey: string | undefined },
): Promise<{ kind: 'new' | 'kept'; apiKey: string }> {
  const client = (apiKey: string) => new DotmeshClient({ url: o.url, user: 'admin', apiKey });
  const seeded = await waitForServer({ client: client(o.seed), child: o.child, logFile: o.config.logFile, io: ctx.io });
  if (seeded === 'ready') return { kind: 'new', apiKey: o.seed };
  if (o.localKey) {
    const kept = await waitForServer({ client: client(o.localKey), child: null, logFile: o.config.logFile, io: ctx.io });
    if (kept === 'ready') return { kind: 'kept', apiKey: o.localKey };
  }
  const flags = startCommand(o.config.poolDir).replace(/^dm cluster start/, '');
  throw new DotmeshError(
    'UNAUTHENTICATED',
    `dotmesh-server is running and keeps the admin credentials this cluster had, but ${ctx.options.configPath} has no API key it accepts`,
    {
      hint: `add the admin API key you have: DOTMESH_PASSWORD=<key> dm remote add local admin@${new URL(o.url).host}; or replace the admin's password and API key (remotes elsewhere must then be added again): dm cluster stop${flags} && dm cluster init${flags} --new-admin-credentials`,
    },
  );
}

/**
 * A node that joined: waits until it answers (any answer: its admin is the cluster's), then
 * keeps the `local` remote's key when the cluster accepts it (`kept`), else `unknown`.
 */
async function joinedAdminKey(
  ctx: CommandContext,
  o: { config: ServerConfig; url: string; child: ChildProcess | null; localKey: string | undefined },
): Promise<{ kind: 'kept' | 'unknown'; apiKey: string }> {
  const client = (apiKey: string) => new DotmeshClient({ url: o.url, user: 'admin', apiKey });
  const io = ctx.io;
  await waitForServer({ client: client(o.localKey ?? 'none'), child: o.child, logFile: o.config.logFile, io });
  if (o.localKey) {
    const kept = await waitForServer({ client: client(o.localKey), child: null, logFile: o.config.logFile, io });
    if (kept === 'ready') return { kind: 'kept', apiKey: o.localKey };
  }
  return { kind: 'unknown', apiKey: '' };
}

/** What the node's managed etcd member is (or why it runs none). */
function etcdMemberLines(r: ClusterInitResult): string[] {
  const m = r.etcdMember;
  if (m) {
    return [
      `This host runs etcd member ${m.id} of the cluster's store (${m.voting ? 'voting' : 'learner'}; ${m.voters} voting of ${m.members} member(s)), started and stopped with dotmesh-server; its data in ${r.config.stateDir}/etcd.`,
      ...(m.voters < 3
        ? [`The store survives the loss of a member from three on: ${3 - m.voters} more join(s) make members.`]
        : []),
    ];
  }
  if (r.joinedThrough && r.config.etcdCertFile !== null && r.config.etcdCaFile?.endsWith('/tls/ca.pem')) {
    return ["The cluster's etcd has its three members: this node uses them and runs none."];
  }
  return [];
}

export function renderClusterInit(r: ClusterInitResult): string[] {
  const remote = `Remote 'local' (admin@${new URL(r.url).host}) is now the current remote`;
  return [
    r.joinedThrough
      ? `dotmesh-server is ready: this node joined the cluster through ${r.joinedThrough}.`
      : 'dotmesh-server is ready.',
    r.admin === 'new'
      ? `${remote}; the admin password is in ${r.adminPasswordFile}.`
      : r.admin === 'unknown'
        ? `The cluster keeps its admin and users; to use this node with dm here: DOTMESH_PASSWORD=<the admin API key> dm remote add local admin@${new URL(r.url).host}`
        : `${remote}. The cluster keeps its admin password, API keys and users (remotes elsewhere keep working)${r.adminPasswordFile ? `; the admin password is in ${r.adminPasswordFile}` : ''}.`,
    ...(r.tlsFingerprint
      ? [
          `HTTPS API on port ${r.config.tlsPort}; certificate SHA256 fingerprint ${r.tlsFingerprint}`,
          r.pinnedBy === 'cluster-ca'
            ? '(pinned in known_servers by the cluster CA that issued it, so the pin holds when the certificate is issued again)'
            : `(pinned in known_servers; elsewhere: dm remote add <name> admin@<this host>:${r.config.tlsPort} --trust-fingerprint <fingerprint>)`,
        ]
      : []),
    ...(r.caPin && r.config.tlsPort !== 0
      ? [
          r.config.clusterPort !== 0
            ? `Cluster CA pin ${r.caPin}: 'dm remote add <name> admin@<any node>:${r.config.tlsPort} --trust-ca ${r.caPin}' trusts every node of the cluster.`
            : `Cluster CA pin ${r.caPin}: 'dm remote add <name> admin@<this host>:${r.config.tlsPort} --trust-ca ${r.caPin}' trusts this node, also once its certificate is issued again.`,
        ]
      : []),
    ...(r.config.clusterPort === 0
      ? []
      : [
          `Node of a cluster of several nodes: node-to-node endpoint on port ${r.config.clusterPort}${r.config.advertiseAddress ? `, advertised at ${r.config.advertiseAddress}` : ''}; store etcd at ${r.config.etcdEndpoints.join(',')}.`,
          ...etcdMemberLines(r),
          "Further hosts join with a token: 'dm cluster token create --token-file <file>' on a node holding the CA key prints the 'dm cluster join' command to run on them.",
        ]),
    r.systemdUnit
      ? `The systemd unit ${r.systemdUnit} runs the server: it starts it at boot and after a crash ('dm cluster stop' / 'dm cluster start' stop and start it).`
      : `No systemd unit runs the server on this host: after a reboot or a crash, start it with '${r.startCommand}' (or add that command to the host's boot, e.g. an @reboot line in root's crontab).`,
    "Next: 'dm init <dot>' creates a dot; 'dm list' shows them.",
  ];
}
