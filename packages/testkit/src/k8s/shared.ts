import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AfterHook, cleanupFor } from '../cleanup.ts';
import { acquireFlock } from '../flock.ts';
import { isAlive, killTree, spawnTracked, waitFor } from '../process.ts';
import { testRoot } from '../tmp.ts';
import { CLUSTER_INFO_FILE, clusterHandle, startTestCluster, type TestCluster, type TestClusterInfo } from './cluster.ts';
import { CLUSTER_STATE_FILE, readClusterState, teardownCluster } from './teardown.ts';

/**
 * One test cluster per test run, shared by the Kubernetes test files.
 *
 * scripts/test-all runs node's test runner with `--test-global-setup` pointing at
 * global-setup.ts, whose `globalSetup` only sets two environment variables (the shared
 * directory and its own pid). The first test file that calls `useTestCluster` starts the
 * cluster in a daemon process (cluster-daemon.ts, detached, so it outlives that file) under a
 * flock, and waits for it; later files find it ready. `globalTeardown` stops the daemon, which
 * tears the cluster down; the daemon also stops by itself when the runner that owns it dies.
 * So a run without Kubernetes tests starts no cluster, and one with them starts exactly one.
 *
 * Without the global setup (a test file run on its own with `node --test FILE`), a cluster is
 * started for the calling test and stopped when it ends.
 */
export const SHARED_DIR_ENV = 'DOTMESH_K8S_SHARED_DIR';
export const SHARED_OWNER_ENV = 'DOTMESH_K8S_SHARED_OWNER';

const DAEMON = fileURLToPath(new URL('./cluster-daemon.ts', import.meta.url));
/** Files in the shared directory. */
export const SHARED_FILES = {
  lock: 'lock',
  pid: 'daemon.pid',
  /** The cluster's directory, written as soon as it exists. */
  clusterDir: 'cluster-dir',
  /** The cluster's directory again, once the cluster is ready. */
  ready: 'ready',
  failed: 'failed',
  log: 'daemon.log',
} as const;
/** A cold cache builds the images first (debootstrap): minutes. */
const START_TIMEOUT_MS = 20 * 60_000;

export interface UseTestClusterOptions {
  readonly log?: (s: string) => void;
  readonly env?: NodeJS.ProcessEnv;
}

/** The run's shared cluster, or (without the global setup) one of the test `t`'s own. */
export async function useTestCluster(t: AfterHook, o: UseTestClusterOptions = {}): Promise<TestCluster> {
  const env = o.env ?? process.env;
  const shared = env[SHARED_DIR_ENV];
  if (shared === undefined || shared === '') {
    return startTestCluster({ cleanup: cleanupFor(t), ...(o.log ? { log: o.log } : {}) });
  }
  return sharedCluster(shared, env[SHARED_OWNER_ENV], o.log ?? (() => {}));
}

function readyInfo(dir: string): TestClusterInfo | undefined {
  const ready = join(dir, SHARED_FILES.ready);
  if (!existsSync(ready)) return undefined;
  const clusterDir = readFileSync(ready, 'utf8').trim();
  return JSON.parse(readFileSync(join(clusterDir, CLUSTER_INFO_FILE), 'utf8')) as TestClusterInfo;
}

function daemonPid(dir: string): number | undefined {
  const f = join(dir, SHARED_FILES.pid);
  return existsSync(f) ? Number(readFileSync(f, 'utf8').trim()) : undefined;
}

async function sharedCluster(dir: string, owner: string | undefined, log: (s: string) => void): Promise<TestCluster> {
  await mkdir(dir, { recursive: true });
  const release = await acquireFlock(join(dir, SHARED_FILES.lock), START_TIMEOUT_MS + 60_000);
  try {
    const failed = join(dir, SHARED_FILES.failed);
    if (existsSync(failed)) throw new Error(`the run's shared test cluster failed to start: ${await readFile(failed, 'utf8')}`);
    const pid = daemonPid(dir);
    if (pid !== undefined && isAlive(pid)) {
      const info = readyInfo(dir);
      if (info) return clusterHandle(info);
      throw new Error(
        `the shared test cluster's daemon (pid ${pid}) runs but its cluster is not ready (see ${join(dir, SHARED_FILES.log)})`,
      );
    }
    await removeDeadCluster(dir);
    log(`starting the run's shared test cluster (daemon log: ${join(dir, SHARED_FILES.log)})`);
    const out = openSync(join(dir, SHARED_FILES.log), 'a');
    let daemon: ReturnType<typeof spawnTracked>;
    try {
      const args = [DAEMON, '--shared-dir', dir, ...(owner ? ['--owner', owner] : [])];
      daemon = spawnTracked(process.execPath, args, {
        stdio: ['ignore', out, out],
        env: { ...process.env, DOTMESH_TEST_ROOT: testRoot() },
      });
    } finally {
      closeSync(out);
    }
    // The daemon outlives this test file: its process must not keep this one's event loop alive.
    daemon.child.unref();
    const stop = new AbortController();
    void daemon.exited.then((e) => stop.abort(new Error(`the cluster daemon exited (${e.code ?? e.signal})`)));
    try {
      await waitFor(() => existsSync(join(dir, SHARED_FILES.ready)) || existsSync(failed), {
        timeoutMs: START_TIMEOUT_MS,
        intervalMs: 500,
        what: 'the shared test cluster',
        signal: stop.signal,
      });
    } catch (e) {
      const tail = await readFile(join(dir, SHARED_FILES.log), 'utf8').then(
        (s) => s.slice(-4000),
        () => '',
      );
      throw new Error(`${(e as Error).message}\n--- daemon log (tail) ---\n${tail}`, { cause: e });
    }
    if (existsSync(failed)) throw new Error(`the run's shared test cluster failed to start: ${await readFile(failed, 'utf8')}`);
    return clusterHandle(readyInfo(dir)!);
  } finally {
    await release();
  }
}

/** Tears down what a dead daemon left and forgets it (the caller holds the lock). */
async function removeDeadCluster(dir: string): Promise<void> {
  const named = join(dir, SHARED_FILES.clusterDir);
  const clusterDir = existsSync(named) ? readFileSync(named, 'utf8').trim() : undefined;
  if (clusterDir !== undefined && existsSync(join(clusterDir, CLUSTER_STATE_FILE))) {
    await teardownCluster(readClusterState(clusterDir));
    await rm(clusterDir, { recursive: true, force: true });
  }
  for (const f of [SHARED_FILES.pid, SHARED_FILES.clusterDir, SHARED_FILES.ready]) await rm(join(dir, f), { force: true });
}

/**
 * Stops the shared cluster's daemon (SIGTERM: it tears the cluster down) and, if it died
 * without finishing, tears down what is left itself; then removes the shared directory.
 * Returns the pid of the daemon it stopped (undefined: none was running). Throws if the daemon
 * survives SIGKILL.
 */
export async function stopSharedCluster(dir: string): Promise<number | undefined> {
  if (!existsSync(dir)) return undefined;
  const pid = daemonPid(dir);
  const running = pid !== undefined && isAlive(pid) ? pid : undefined;
  if (running !== undefined) {
    process.kill(running, 'SIGTERM');
    await waitFor(() => !isAlive(running), {
      timeoutMs: 180_000,
      intervalMs: 200,
      what: `the cluster daemon (pid ${running}) to stop`,
    }).catch(() => killTree(running, { signal: 'SIGKILL' }));
    if (isAlive(running)) throw new Error(`the shared test cluster's daemon (pid ${running}) is still running`);
  }
  await removeDeadCluster(dir);
  await rm(dir, { recursive: true, force: true });
  return running;
}
