import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DotmeshClient } from '@dotmesh/rpc/client';
import { DEFAULT_DOCKER_SOCKET } from '@dotmesh/rpc/server-defaults';
import { type Cleanup, freePorts, makeTempDir, SERVER_BUNDLE, type ServerProcess, startServerProcess } from '@dotmesh/testkit';
import { percentile, round } from './harness.ts';
import { type Row, slackRow } from './report.ts';
import type { SizedDot } from './sized.ts';

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

export interface BenchServerOptions {
  /** Server config fields on top of testkit's (P9: the Docker plugin and engine sockets). */
  readonly extraConfig?: Record<string, unknown>;
  /** The config `dm cluster init` writes by default (installedConfig) instead of testkit's bare one. */
  readonly installed?: boolean;
}

export async function startBenchServer(cleanup: Cleanup, poolSize: string, o: BenchServerOptions = {}): Promise<BenchServer> {
  const dir = await makeTempDir('bench-server', cleanup);
  const serverBin = existsSync(SERVER_BUNDLE) ? SERVER_BUNDLE : join(import.meta.dirname, '../../packages/server/src/bin.ts');
  // The host-space guard refuses writes below 1 GiB free by default; leave it as users have it.
  const extraConfig = { ...(o.installed ? await installedConfig(dir) : {}), ...o.extraConfig };
  const proc = await startServerProcess({ cleanup, dir, poolSize, serverBin, extraConfig });
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

/**
 * The server config as `dm cluster init` writes it with its default flags (what
 * `scripts/install` sets up), on top of testkit's: the pool file preallocated (not sparse), the
 * API over HTTPS too, the Docker volume plugin served and the Docker Engine API at its default
 * socket (an engine there, or none, is asked as on an installed host). Kept apart from an
 * install: free ports, the pool in the bench's dir, the listener on 127.0.0.1 (the default
 * 0.0.0.0 would expose the bench server), and the plugin socket in the bench's dir under a
 * driver name of its own, so no dockerd uses it and no real `dm` volume maps to its dots.
 */
export async function installedConfig(dir: string): Promise<Record<string, unknown>> {
  const [tlsPort] = await freePorts(1);
  return {
    sparse: false,
    tlsPort,
    dockerPluginSocket: join(dir, 'plugins', `dmbench${randomBytes(4).toString('hex')}.sock`),
    dockerSocket: DEFAULT_DOCKER_SOCKET,
  };
}

/** One server a benchmark measures, with its sized dot; `config` names a configuration other than the bare fixture. */
export interface BenchTarget {
  readonly s: BenchServer;
  readonly d: SizedDot;
  readonly config?: string;
}

/**
 * One latency row per target (slackRow; `what` gets the target's config appended), all against
 * the same reference samples, each noting the server's split of its time (stepNote of the
 * operations logged as `logged`).
 */
export function targetRows(o: {
  readonly id: string;
  readonly what: string;
  readonly size: string;
  readonly targets: readonly BenchTarget[];
  /** Per target, in the same order. */
  readonly samples: readonly (readonly number[])[];
  readonly reference: { readonly what: string; readonly samples: readonly number[] };
  readonly slackMs: number;
  readonly logged: string;
}): Promise<Row[]> {
  return Promise.all(
    o.targets.map(async (t, k) => ({
      ...slackRow({
        id: o.id,
        what: t.config ? `${o.what}, ${t.config}` : o.what,
        size: o.size,
        samples: o.samples[k]!,
        reference: o.reference,
        slackMs: o.slackMs,
      }),
      note: await stepNote(t.s, o.logged, o.samples[k]!.length),
    })),
  );
}

/**
 * Where the server's time went in its last `n` operations logged as `msg` (the `ms` phases
 * of "rolled back" and "created branch"): the median of each phase, e.g.
 * "server p50 ms: containers 1, inUse 4, intent 8, swap 20, label 8, gcAndStore 1".
 */
export async function stepNote(s: BenchServer, msg: string, n: number): Promise<string> {
  const lines = loggedAs((await s.proc.log()).split('\n'), msg).slice(-n);
  const note = phasesNote(lines);
  return note === '' ? '' : `server p50 ms: ${note}`;
}

/** The server log lines (pino JSON) whose message is `msg`. */
export function loggedAs(lines: readonly string[], msg: string): string[] {
  return lines.filter((l) => l.includes(`"msg":"${msg}"`));
}

/** The median of each phase of the `ms` field over log `lines`: "inUse 4, swap 20", or ''. */
export function phasesNote(lines: readonly string[]): string {
  const phases = new Map<string, number[]>();
  for (const line of lines) {
    let ms: unknown;
    try {
      ms = (JSON.parse(line) as { ms?: unknown }).ms;
    } catch {
      continue;
    }
    if (typeof ms !== 'object' || ms === null) continue;
    for (const [k, v] of Object.entries(ms)) if (typeof v === 'number') phases.set(k, [...(phases.get(k) ?? []), v]);
  }
  return [...phases].map(([k, v]) => `${k} ${round(percentile(v, 50))}`).join(', ');
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
