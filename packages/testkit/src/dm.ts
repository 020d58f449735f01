import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { join, resolve } from 'node:path';
import { refuseRootNamespaceConnect, routeCheck, type TestHost } from './hosts.ts';

/** The built `dm` bundle that end-to-end tests run (made by `npm run build`). */
export const DM_BUNDLE = resolve(import.meta.dirname, '../../../dist/dm.mjs');

export interface DmResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface DmOptions {
  /** HOME of the dm process: its ~/.dotmesh/config lives there. */
  readonly home: string;
  readonly input?: string;
  readonly env?: Record<string, string>;
  readonly timeoutMs?: number;
}

/**
 * Runs the built `dm` like a user would (asynchronously, so an in-process server keeps
 * answering). Never throws for a non-zero exit: tests assert on code, stdout and stderr.
 */
export function runDm(args: readonly string[], o: DmOptions): Promise<DmResult> {
  for (const a of dmTargets(args, o.home)) refuseRootNamespaceConnect(a);
  return execDm([process.execPath, DM_BUNDLE, ...args], o);
}

/**
 * The IPv4 addresses a dm run may contact: the target of `remote add` and every remote in
 * HOME's ~/.dotmesh/config.
 */
function dmTargets(args: readonly string[], home: string): string[] {
  const out = new Set<string>();
  const i = args.indexOf('add');
  if (args.includes('remote') && i >= 0) {
    const host = /@([^:]+)/.exec(args[i + 2] ?? '')?.[1];
    if (host !== undefined && isIPv4(host)) out.add(host);
  }
  try {
    const config = JSON.parse(readFileSync(join(home, '.dotmesh', 'config'), 'utf8')) as {
      Remotes?: Record<string, { Hostname?: string }>;
    };
    for (const r of Object.values(config.Remotes ?? {})) if (r.Hostname && isIPv4(r.Hostname)) out.add(r.Hostname);
  } catch {
    // no config yet
  }
  return [...out];
}

/**
 * Runs the built `dm` inside `host`'s network namespace (`nsenter --net=...`), after checking
 * that every address it may contact (the `remote add` target, the remotes in HOME's config and
 * `o.to`) routes through a veth of the test kit.
 */
export async function runDmIn(
  host: TestHost,
  args: readonly string[],
  o: DmOptions & { to?: readonly string[] },
): Promise<DmResult> {
  for (const a of new Set([...dmTargets(args, o.home), ...(o.to ?? [])])) await routeCheck(host, a);
  return execDm(['nsenter', `--net=${host.netnsPath}`, '--', process.execPath, DM_BUNDLE, ...args], o);
}

/**
 * Runs the built `dm` under `wrapper` (a command line that ends where dm's own argv begins,
 * such as `nsenter --target=PID --net --`); the caller answers for where it connects.
 */
export function runDmWrapped(wrapper: readonly string[], args: readonly string[], o: DmOptions): Promise<DmResult> {
  return execDm([...wrapper, process.execPath, DM_BUNDLE, ...args], o);
}

function execDm(argv: readonly string[], o: DmOptions): Promise<DmResult> {
  if (!existsSync(DM_BUNDLE)) throw new Error(`${DM_BUNDLE} is missing: run 'npm run build' first`);
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      {
        encoding: 'utf8',
        timeout: o.timeoutMs ?? 120_000,
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: o.home, ...o.env },
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolvePromise({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(o.input ?? '');
  });
}
