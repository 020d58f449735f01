import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DotmeshClient } from '@dotmesh/rpc/client';
import { type Cleanup, makeTempDir, SERVER_BUNDLE, type ServerProcess, startServerProcess } from '@dotmesh/testkit';

/**
 * The Dotmesh side of every benchmark: one real dotmesh-server (the built bundle users run, or
 * the source entry when nothing is built) on a sparse loop-file btrfs pool of `poolSize`, driven
 * through the typed RPC client. References that must run "on the same pool" work under
 * `rawRoot`, a directory on the server's pool mount that the server never looks at (it only reads
 * `fs/`, `staging/` and `trash/`). `cleanup` stops the server, unmounts, detaches and deletes
 * everything, also after a failure.
 */
export interface BenchServer {
  readonly proc: ServerProcess;
  readonly rpc: DotmeshClient;
  /** The server's pool mount point. */
  readonly mnt: string;
  /** Directory for raw subvolumes on the server's pool. */
  readonly rawRoot: string;
  /** Which server ran: the bundle or the source entry. */
  readonly serverBin: string;
  /** HOME for `dm` runs: its ~/.dotmesh/config points at this server as admin. */
  readonly dmHome: string;
}

export async function startBenchServer(
  cleanup: Cleanup,
  poolSize: string,
  o: { readonly extraConfig?: Record<string, unknown> } = {},
): Promise<BenchServer> {
  const dir = await makeTempDir('bench-server', cleanup);
  const serverBin = existsSync(SERVER_BUNDLE) ? SERVER_BUNDLE : join(import.meta.dirname, '../../packages/server/src/bin.ts');
  // The host-space guard refuses writes below 1 GiB free by default; leave it as users have it.
  // `extraConfig`: server config fields on top of testkit's (P9: the Docker plugin and engine sockets).
  const proc = await startServerProcess({ cleanup, dir, poolSize, serverBin, extraConfig: o.extraConfig ?? {} });
  const mnt = JSON.parse(await readFile(proc.configFile, 'utf8')).mountPoint ?? join(dir, 'mnt');
  const rawRoot = join(mnt, 'bench-raw');
  await mkdir(rawRoot, { recursive: true });
  const dmHome = join(dir, 'home');
  await mkdir(join(dmHome, '.dotmesh'), { recursive: true, mode: 0o700 });
  await writeFile(
    join(dmHome, '.dotmesh', 'config'),
    JSON.stringify({
      CurrentRemote: 'local',
      Remotes: {
        local: {
          User: 'admin',
          Hostname: '127.0.0.1',
          Port: proc.port,
          ApiKey: proc.apiKey,
          CurrentVolume: '',
          CurrentBranches: null,
          DefaultRemoteVolumes: null,
        },
      },
      S3Remotes: {},
    }),
    { mode: 0o600 },
  );
  return { proc, rpc: proc.admin, mnt, rawRoot, serverBin, dmHome };
}

/** Resident and peak resident memory of a process, in MiB (from /proc/<pid>/status). */
export async function rssMiB(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

/** Runs `fn` over `items` with at most `limit` in flight; resolves when all are done. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) await fn(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
