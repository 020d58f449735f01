import { existsSync } from 'node:fs';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DotmeshClient } from '@dotmesh/rpc';
import {
  type Cleanup,
  type DmResult,
  detachLoopDevicesUnder,
  freePorts,
  makeTempDir,
  runDm,
  SERVER_BUNDLE,
  unmountUnder,
} from '@dotmesh/testkit';

/**
 * A single-node cluster made the way a user makes one — `dm cluster init` of the built `dm`
 * starting the built `dotmesh-server` — but with every path, port and HOME private to the
 * test. `cleanup` resets it with `--destroy-data` and removes whatever is left.
 */
export interface TestCluster {
  readonly home: string;
  readonly poolDir: string;
  readonly port: number;
  readonly checkPort: number;
  /** The HTTPS API port (`--tls-port`). */
  readonly tlsPort: number;
  dm(args: readonly string[], options?: { input?: string; env?: Record<string, string> }): Promise<DmResult>;
  /** dm, failing the test with its output unless it exits 0. */
  ok(args: readonly string[], options?: { input?: string; env?: Record<string, string> }): Promise<string>;
  initArgs(): string[];
  apiKey(): Promise<string>;
  client(): Promise<DotmeshClient>;
  log(): Promise<string>;
}

export async function initCluster(
  cleanup: Cleanup,
  options: { poolSize?: string; extraInitArgs?: readonly string[] } = {},
): Promise<TestCluster> {
  const home = await makeTempDir('home-', cleanup);
  const poolDir = await makeTempDir('pool-', cleanup);
  const dockerDir = await makeTempDir('docker-', cleanup);
  const [port, checkPort, tlsPort] = (await freePorts(3)) as [number, number, number];
  const dm = (args: readonly string[], o: { input?: string; env?: Record<string, string> } = {}) =>
    runDm(args, { home, ...(o.input === undefined ? {} : { input: o.input }), ...(o.env ? { env: o.env } : {}) });
  const ok = async (args: readonly string[], o: { input?: string; env?: Record<string, string> } = {}) => {
    const r = await dm(args, o);
    if (r.code !== 0) throw new Error(`dm ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r.stdout;
  };
  const initArgs = () => [
    'cluster',
    'init',
    '--use-pool-dir',
    poolDir,
    '--pool-size',
    options.poolSize ?? '1G',
    '--sparse',
    '--port',
    String(port),
    '--check-port',
    String(checkPort),
    '--tls-port',
    String(tlsPort),
    '--listen',
    '127.0.0.1',
    '--no-systemd',
    '--server-bin',
    SERVER_BUNDLE,
    // The plugin is served, but where no dockerd looks, and no real engine is asked.
    '--docker-plugin-socket',
    join(dockerDir, 'plugins', 'dm.sock'),
    '--docker-socket',
    join(dockerDir, 'no-docker.sock'),
    ...(options.extraInitArgs ?? []),
  ];
  cleanup.add(async () => {
    await dm(['cluster', 'reset', '--use-pool-dir', poolDir, '--destroy-data', '--server-bin', SERVER_BUNDLE]);
    await unmountUnder(poolDir);
    await detachLoopDevicesUnder(poolDir);
  });
  await ok(initArgs());
  const self: TestCluster = {
    home,
    poolDir,
    port,
    checkPort,
    tlsPort,
    dm,
    ok,
    initArgs,
    async apiKey() {
      const config = JSON.parse(await readFile(join(home, '.dotmesh', 'config'), 'utf8')) as {
        Remotes: { local: { ApiKey: string } };
      };
      return config.Remotes.local.ApiKey;
    },
    async client() {
      return new DotmeshClient({ url: `http://127.0.0.1:${port}/rpc`, user: 'admin', apiKey: await self.apiKey() });
    },
    log: () => readFile(join(poolDir, 'server', 'dotmesh-server.log'), 'utf8').catch(() => ''),
  };
  return self;
}

/**
 * A copy of the built server bundle that reports `version` (a "newer" or "older" server), in
 * `dir`, with the chunks the bundle imports and dotmesh-pump beside it. Returns its path.
 */
export async function serverWithVersion(dir: string, version: string): Promise<string> {
  const text = await readFile(SERVER_BUNDLE, 'utf8');
  const patched = text.replace(/var SERVER_VERSION = [^;\n]+;/, `var SERVER_VERSION = ${JSON.stringify(version)};`);
  if (patched === text) throw new Error(`${SERVER_BUNDLE} defines no SERVER_VERSION to patch`);
  const chunks = join(dirname(SERVER_BUNDLE), 'chunks');
  if (existsSync(chunks) && !existsSync(join(dir, 'chunks'))) await cp(chunks, join(dir, 'chunks'), { recursive: true });
  // the server runs the dotmesh-pump beside its bundle
  const pump = join(dirname(SERVER_BUNDLE), 'dotmesh-pump');
  if (!existsSync(join(dir, 'dotmesh-pump'))) await cp(pump, join(dir, 'dotmesh-pump'));
  const file = join(dir, `dotmesh-server-${version}.mjs`);
  await writeFile(file, patched);
  return file;
}
