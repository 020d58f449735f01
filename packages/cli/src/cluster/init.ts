import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { initialAdminSchema, resolveServerConfig, type ServerConfig, serverConfigPath } from '@dotmesh/rpc';
import { DotmeshClient, rpcUrl } from '@dotmesh/rpc/client';
import { newRemote } from '../config.ts';
import type { CommandContext } from '../context.ts';
import { prettySize } from '../format.ts';
import { type AdminCredentials, generateAdminCredentials } from './credentials.ts';
import { preflight } from './preflight.ts';
import { resolveServerBin, serverCommand, startServer, waitForServer } from './server-process.ts';
import { btrfsInKernel, exists, freeBytesAt, isBtrfsMount, pid1IsSystemd, portFree, runningPid, which } from './system.ts';
import { installUnit, UNIT_NAME } from './systemd.ts';
import { pinLocalServer } from './tls.ts';

/**
 * `dm cluster init`: brings up a single-node cluster on this host. Steps: preflight (root,
 * not already running, btrfs, mkfs.btrfs, free space, free ports); state dir (0700) with the
 * initial admin credentials (0600) and the server config; the server started detached and
 * pinged until ready; remote `local` saved as current with the admin password file (0400);
 * a systemd unit enabled when PID 1 is systemd. Re-running after a stop generates new
 * credentials (unless an unused initial-admin.json is still there) and the server resets the
 * admin's password and API key to them; the `local` remote is rewritten with the new key.
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
}

export interface ClusterInitResult {
  serverConfigFile: string;
  serverBin: string;
  pid: number | null;
  url: string;
  remote: string;
  adminPasswordFile: string;
  systemdUnit: string | null;
  config: ServerConfig;
  /** SHA-256 fingerprint of the HTTPS certificate (null: no HTTPS), pinned in known_servers. */
  tlsFingerprint: string | null;
}

async function credentialsFor(config: ServerConfig): Promise<AdminCredentials> {
  const text = await readFile(config.initialAdminFile, 'utf8').catch(() => null);
  if (text !== null) {
    const parsed = initialAdminSchema.safeParse(JSON.parse(text));
    if (parsed.success) return parsed.data;
  }
  return generateAdminCredentials();
}

export async function clusterInit(ctx: CommandContext, o: ClusterInitOptions): Promise<ClusterInitResult> {
  const say = (line: string) => ctx.reporter.notice(line);
  const config = resolveServerConfig({
    poolDir: o.poolDir,
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
  });
  say('Checking suitable environment...');
  const pid = await runningPid(config.pidFile);
  const reusePool = await exists(config.poolFile);
  const problem = preflight(
    {
      uid: ctx.runtime.uid,
      runningPid: pid,
      btrfsInKernel: await btrfsInKernel(),
      mkfsBtrfs: o.existingMount ? null : await which('mkfs.btrfs', ctx.env.PATH),
      freeBytes: o.existingMount || o.sparse || reusePool ? null : await freeBytesAt(config.poolDir),
      portsInUse: pid !== null ? [] : await portsInUse(config),
      existingMountIsBtrfs: o.existingMount ? await isBtrfsMount(o.existingMount) : null,
    },
    { ...config, existingMount: o.existingMount },
  );
  if (problem) throw problem;
  const serverBin = await resolveServerBin({ flag: o.serverBin, env: ctx.env, scriptPath: ctx.runtime.scriptPath });

  await mkdir(config.poolDir, { recursive: true, mode: 0o755 });
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  await chmod(config.stateDir, 0o700);
  const creds = await credentialsFor(config);
  await writeFile(config.initialAdminFile, JSON.stringify(creds), { mode: 0o600 });
  await chmod(config.initialAdminFile, 0o600);
  const serverConfigFile = serverConfigPath(config);
  await writeFile(serverConfigFile, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  say(
    o.existingMount
      ? `Using the btrfs filesystem mounted at ${o.existingMount}`
      : `Pool: ${config.poolFile} (${prettySize(config.poolSizeBytes)}${config.sparse ? ', sparse' : ''}${reusePool ? ', existing' : ''}), mounted at ${config.mountPoint}`,
  );
  say(`Wrote ${serverConfigFile}`);

  const child = startServer({
    serverBin,
    configFile: serverConfigFile,
    logFile: config.logFile,
    nodePath: ctx.runtime.nodePath,
    env: ctx.env,
  });
  say(`Started dotmesh-server (pid ${child.pid ?? '?'}), log: ${config.logFile}`);
  const host = config.listenHost === '0.0.0.0' || config.listenHost === '::' ? '127.0.0.1' : config.listenHost;
  const url = rpcUrl(host, config.port);
  const client = new DotmeshClient({ url, user: 'admin', apiKey: creds.apiKey });
  say(`Waiting for dotmesh-server to answer at ${url}...`);
  await waitForServer({ client, child, logFile: config.logFile, io: ctx.io });

  const dmConfig = await ctx.loadConfig();
  const previous = dmConfig.Remotes.local;
  dmConfig.Remotes.local = {
    ...(previous ?? newRemote('admin', host, config.port, creds.apiKey)),
    User: 'admin',
    Hostname: host,
    Port: config.port,
    ApiKey: creds.apiKey,
  };
  dmConfig.CurrentRemote = 'local';
  await ctx.saveConfig();
  const adminPasswordFile = join(dirname(ctx.options.configPath), 'admin-password.txt');
  await rm(adminPasswordFile, { force: true });
  await writeFile(adminPasswordFile, creds.password, { mode: 0o400 });
  const tlsFingerprint = await pinLocalServer(ctx, config, host);

  let systemdUnit: string | null = null;
  if (o.systemd && (await pid1IsSystemd())) {
    await installUnit([...serverCommand(serverBin, ['serve', '--config', serverConfigFile], ctx.runtime.nodePath).flat()]);
    systemdUnit = UNIT_NAME;
  }
  return {
    serverConfigFile,
    serverBin,
    pid: child.pid ?? null,
    url,
    remote: 'local',
    adminPasswordFile,
    systemdUnit,
    config,
    tlsFingerprint,
  };
}

async function portsInUse(config: ServerConfig): Promise<number[]> {
  const taken: number[] = [];
  const ports = [config.port, config.checkPort, ...(config.tlsPort === 0 ? [] : [config.tlsPort])];
  for (const port of ports) if (!(await portFree(config.listenHost, port))) taken.push(port);
  return taken;
}

export function renderClusterInit(r: ClusterInitResult): string[] {
  return [
    'dotmesh-server is ready.',
    `Remote 'local' (admin@${new URL(r.url).host}) is now the current remote; the admin password is in ${r.adminPasswordFile}.`,
    ...(r.tlsFingerprint
      ? [
          `HTTPS API on port ${r.config.tlsPort}; certificate SHA256 fingerprint ${r.tlsFingerprint}`,
          `(pinned in known_servers; elsewhere: dm remote add <name> admin@<this host>:${r.config.tlsPort} --trust-fingerprint <fingerprint>)`,
        ]
      : []),
    ...(r.systemdUnit ? [`Installed and enabled the systemd unit ${r.systemdUnit} (starts the server at boot).`] : []),
    "Next: 'dm init <dot>' creates a dot; 'dm list' shows them.",
  ];
}
