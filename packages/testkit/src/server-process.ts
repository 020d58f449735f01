import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshClient } from '@dotmesh/rpc';
import type { Cleanup } from './cleanup.ts';
import type { EtcdProcess } from './etcd.ts';
import { routeCheck, type TestHost } from './hosts.ts';
import { detachLoopDevicesUnder, unmountUnder } from './loop.ts';
import { NetnsClient } from './netns-rpc.ts';
import { freePorts } from './ports.ts';
import { pumpBinary } from './pump.ts';
import { makeTempDir } from './tmp.ts';

/** The server's source entry (tests of the server) and its built bundle (end-to-end tests). */
export const SERVER_SOURCE_BIN = resolve(import.meta.dirname, '../../server/src/bin.ts');
export const SERVER_BUNDLE = resolve(import.meta.dirname, '../../../dist/dotmesh-server.mjs');

/**
 * A real dotmesh-server process on a real loop-file btrfs pool in a temp dir, for
 * integration and crash tests. Every path and port is private to the test; `cleanup`
 * removes the process, mounts, loop device and files even when the test fails.
 */
export interface ServerProcess {
  readonly dir: string;
  readonly configFile: string;
  readonly port: number;
  readonly url: string;
  readonly apiKey: string;
  readonly password: string;
  readonly admin: DotmeshClient;
  readonly pid: number;
  client(user: string, secret: string): DotmeshClient;
  /** Graceful stop (SIGTERM); resolves when the process has exited. */
  stop(): Promise<void>;
  /** SIGKILL; resolves when the process has exited. */
  kill9(): Promise<void>;
  /** Resolves when the process exits by itself (e.g. a crash failpoint). */
  exited(): Promise<number | null>;
  /** Starts a new process on the same pool and state. */
  restart(): Promise<ServerProcess>;
  log(): Promise<string>;
}

export interface ServerProcessOptions {
  readonly cleanup: Cleanup;
  readonly dir?: string;
  readonly poolSize?: string;
  readonly extraConfig?: Record<string, unknown>;
  readonly apiKey?: string;
  readonly password?: string;
  /** Entry to run with node (default: the server's source entry). */
  readonly serverBin?: string;
  /** Use this etcd as the store (with its TLS files when it has them) instead of the embedded one. */
  readonly etcd?: Pick<EtcdProcess, 'endpoints' | 'caFile' | 'certFile' | 'keyFile'> & { readonly prefix?: string };
  /**
   * Run the server "on" this test host: under `nsenter --net=<host.netnsPath>` (same mount
   * namespace, so its pool and loop device are as usual), listening on `host.address`. Its
   * `admin` and `client()` then make every call from inside the host's namespace (NetnsClient).
   */
  readonly host?: TestHost;
}

/** The config fields that point a server at `etcd`. */
function etcdConfig(etcd: ServerProcessOptions['etcd']): Record<string, unknown> {
  if (!etcd) return {};
  return {
    store: 'etcd',
    etcdEndpoints: etcd.endpoints,
    etcdCaFile: etcd.caFile ?? null,
    etcdCertFile: etcd.certFile ?? null,
    etcdKeyFile: etcd.keyFile ?? null,
    etcdPrefix: etcd.prefix ?? '',
  };
}

/**
 * Starts a server on `o.dir` (a new temp dir when absent). Whichever dir it is, `cleanup`
 * unmounts what is mounted under it and detaches its loop devices once the test is over (after
 * the server processes, which are registered later and so stopped first).
 */
export async function startServerProcess(o: ServerProcessOptions): Promise<ServerProcess> {
  // A dir made here is removed at the end too (registered first, so it runs after the unmount).
  const dir = o.dir ?? (await makeTempDir('server-', o.cleanup));
  o.cleanup.add(async () => {
    await unmountUnder(`${dir}/`);
    await detachLoopDevicesUnder(`${dir}/`);
  });
  return launch(o, dir);
}

/** One server process on `dir`'s pool and state; `restart()` launches another on the same. */
async function launch(o: ServerProcessOptions, dir: string): Promise<ServerProcess> {
  const stateDir = join(dir, 'server');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const configFile = join(stateDir, 'config.json');
  const apiKey = o.apiKey ?? 'TESTKEY0123456789';
  const password = o.password ?? 'test-password-1';
  let port: number;
  let checkPort: number;
  try {
    const existing = JSON.parse(await readFile(configFile, 'utf8')) as { port: number; checkPort: number };
    port = existing.port;
    checkPort = existing.checkPort;
  } catch {
    // Ports the config names already (a cluster or TLS port picked by the caller) are not reused.
    const taken = new Set<unknown>([o.extraConfig?.clusterPort, o.extraConfig?.tlsPort].filter((v) => typeof v === 'number'));
    let [p, c] = await freePorts(2);
    while (taken.has(p) || taken.has(c)) [p, c] = await freePorts(2);
    port = p!;
    checkPort = c!;
    await writeFile(
      configFile,
      JSON.stringify({
        poolDir: dir,
        poolSizeBytes: o.poolSize ?? '1G',
        sparse: true,
        listenHost: o.host?.address ?? '127.0.0.1',
        port,
        checkPort,
        // No Docker unless a test asks for it (extraConfig): never a real engine or plugin dir.
        dockerPluginSocket: null,
        dockerSocket: join(dir, 'no-docker.sock'),
        // From source, no dotmesh-pump sits beside the entry script: name one built from source.
        ...((o.serverBin ?? SERVER_SOURCE_BIN) === SERVER_SOURCE_BIN ? { pumpBinary: await pumpBinary() } : {}),
        ...etcdConfig(o.etcd),
        ...o.extraConfig,
      }),
    );
    await writeFile(join(stateDir, 'initial-admin.json'), JSON.stringify({ password, apiKey }), { mode: 0o600 });
  }
  const out = await open(join(dir, 'server-stdio.log'), 'a');
  const serverArgv = [process.execPath, o.serverBin ?? SERVER_SOURCE_BIN, 'serve', '--config', configFile];
  // nsenter execs the server, so child.pid is the server's own pid.
  const argv = o.host ? ['nsenter', `--net=${o.host.netnsPath}`, '--', ...serverArgv] : serverArgv;
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), {
    stdio: ['ignore', out.fd, out.fd],
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  await out.close();
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  let exitedCode: number | null | undefined;
  void exit.then((c) => {
    exitedCode = c;
  });
  o.cleanup.add(async () => {
    if (exitedCode === undefined) {
      child.kill('SIGKILL');
      await exit;
    }
  });
  const url = `http://${o.host?.address ?? '127.0.0.1'}:${port}/rpc`;
  const host = o.host;
  const client = (user: string, secret: string) =>
    host
      ? new NetnsClient(host, { url, user, apiKey: secret, timeoutMs: 60_000 })
      : new DotmeshClient({ url, user, apiKey: secret, timeoutMs: 60_000 });
  const admin = client('admin', apiKey);
  const logText = async () => {
    const parts = await Promise.all(
      [join(dir, 'server-stdio.log'), join(stateDir, 'dotmesh-server.log')].map((f) => readFile(f, 'utf8').catch(() => '')),
    );
    return parts.join('\n');
  };
  // On a host, `GET /check` with curl inside it (a node process per attempt would cost far
  // more): the check port answers once the API listens and the node has advertised itself.
  const ready = host
    ? async () => {
        await routeCheck(host, host.address);
        const { stdout } = await host.exec('curl', ['-sS', '--max-time', '2', `http://${host.address}:${checkPort}/check`]);
        return stdout.trim() === 'OK';
      }
    : async () => (await admin.call('Ping', null, { timeoutMs: 2000 })) === true;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exitedCode !== undefined)
      throw new Error(`dotmesh-server exited with ${exitedCode} during start:\n${(await logText()).slice(-4000)}`);
    try {
      if (await ready()) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`dotmesh-server did not answer within 60 s:\n${(await logText()).slice(-4000)}`);
    await sleep(100);
  }
  const self: ServerProcess = {
    dir,
    configFile,
    port,
    url,
    apiKey,
    password,
    admin,
    pid: child.pid!,
    client,
    async stop() {
      if (exitedCode === undefined) child.kill('SIGTERM');
      await exit;
    },
    async kill9() {
      if (exitedCode === undefined) child.kill('SIGKILL');
      await exit;
    },
    exited: () => exit,
    restart: () => launch(o, dir),
    log: logText,
  };
  return self;
}
