import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireFlock } from '../flock.ts';

/**
 * What test-cluster kubelets change on the host outside their own directories, and its undoing.
 *
 * A kubelet sets three sysctls at start (`kernel.panic`, `kernel.panic_on_oops`,
 * `vm.overcommit_memory`) and creates a few fixed paths (`/var/lib/kubelet/device-plugins`,
 * `/var/log/containers`, containerd's and libcni's `/run/containerd/...` and `/var/lib/cni/...`).
 * The testkit itself raises one sysctl before the kubelets start: `fs.inotify.max_user_instances`
 * (see MIN_INOTIFY_INSTANCES). Several test clusters may run at once (one per test run, other
 * runs beside it), so the machine keeps one registry, `/run/dotmesh-test/k8s-host.json`, under a
 * flock: the first cluster to register records the sysctls' values and which of those paths were
 * missing; the last one to leave writes the values back and removes the paths that were missing
 * (a path someone else filled meanwhile is left alone). A registration whose cluster directory no
 * longer exists is stale and dropped; when only stale ones were left, the host is restored then
 * (their clusters died without leaving). The registry lives under /run, as the sysctls do: a reboot
 * resets both.
 */
export const KUBELET_SYSCTLS = ['kernel/panic', 'kernel/panic_on_oops', 'vm/overcommit_memory'] as const;

const INOTIFY_INSTANCES = 'fs/inotify/max_user_instances';

/**
 * The inotify instances a registered cluster makes sure root may hold. Each test kubelet holds
 * 6–10 (cAdvisor, its certificate and config watchers), its containerd and kube-proxy more; the
 * kernel's default of 128 per user runs out with one cluster of nine nodes (replace-all's peak)
 * beside the other tests' services ("inotify_init: too many open files", and the node never
 * gets Ready). Raised, never lowered, while a cluster is registered; restored after the last.
 */
export const MIN_INOTIFY_INSTANCES = 1024;

/** Every sysctl recorded at the first registration and restored after the last. */
export const HOST_SYSCTLS = [...KUBELET_SYSCTLS, INOTIFY_INSTANCES] as const;

/** Fixed host paths kubelets, containerd and libcni create; parents before children. */
export const SHARED_HOST_PATHS = [
  '/var/lib/kubelet',
  '/var/lib/kubelet/device-plugins',
  '/var/log/containers',
  '/var/lib/cni',
  '/var/lib/cni/results',
  '/run/containerd',
  '/run/containerd/s',
  '/run/containerd/fifo',
  '/run/containerd/runc',
] as const;

/** Removed with their content when they were missing before (only kubelets write there). */
const OWNED_WHEN_CREATED = new Set(['/var/lib/kubelet', '/var/lib/kubelet/device-plugins']);

export const HOST_REGISTRY_DIR = '/run/dotmesh-test';
const REGISTRY = join(HOST_REGISTRY_DIR, 'k8s-host.json');
const LOCK = join(HOST_REGISTRY_DIR, 'k8s-host.lock');
const DEVICE_PLUGIN_SOCKET = '/var/lib/kubelet/device-plugins/kubelet.sock';

interface Registry {
  /** sysctl values before the first registered cluster started. */
  readonly sysctls: Record<string, string>;
  /** Which SHARED_HOST_PATHS were missing then. */
  readonly created: string[];
  users: { readonly id: string; readonly dir: string }[];
}

export interface HostSnapshot {
  readonly sysctls: Record<string, string>;
  readonly existing: string[];
}

/** The sysctl values and which shared paths exist, right now. */
export function snapshotHost(): HostSnapshot {
  return {
    sysctls: Object.fromEntries(HOST_SYSCTLS.map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8').trim()])),
    existing: SHARED_HOST_PATHS.filter((p) => existsSync(p)),
  };
}

/**
 * The host's state as it was before any test cluster changed it: what the registry recorded
 * when a cluster is registered now (its kubelets have already set the sysctls), else the state
 * right now. What a cluster's teardown must bring back once no cluster is registered any more.
 */
export async function hostBaseline(): Promise<HostSnapshot> {
  return withRegistry(async (r) => {
    if (r === undefined || r.users.length === 0) return [r, snapshotHost()];
    return [r, { sysctls: { ...r.sysctls }, existing: SHARED_HOST_PATHS.filter((p) => !r.created.includes(p)) }];
  });
}

async function withRegistry<T>(fn: (r: Registry | undefined) => Promise<[Registry | undefined, T]>): Promise<T> {
  await mkdir(HOST_REGISTRY_DIR, { recursive: true });
  const release = await acquireFlock(LOCK, 60_000);
  try {
    let current = existsSync(REGISTRY) ? (JSON.parse(await readFile(REGISTRY, 'utf8')) as Registry) : undefined;
    if (current) {
      current.users = current.users.filter((u) => existsSync(u.dir));
      // Only stale registrations were left: nobody else will restore what they changed.
      if (current.users.length === 0) {
        await restoreHost(current);
        current = undefined;
      }
    }
    const [next, result] = await fn(current);
    if (next === undefined || next.users.length === 0) {
      await rm(REGISTRY, { force: true });
    } else {
      await writeFile(`${REGISTRY}.tmp`, JSON.stringify(next, null, 2));
      await rename(`${REGISTRY}.tmp`, REGISTRY);
    }
    return result;
  } finally {
    await release();
  }
}

/**
 * Registers the cluster `id` (whose files are under `dir`) as a user of the host state, before
 * its kubelets start, and raises the inotify instances limit to MIN_INOTIFY_INSTANCES when it is
 * lower. Throws when a kubelet that is not a test cluster's owns the device-plugin socket (a host
 * kubelet: ours would take its socket over).
 */
export async function registerHostUser(id: string, dir: string): Promise<void> {
  await withRegistry(async (r) => {
    let next = r;
    if (next === undefined || next.users.length === 0) {
      if (existsSync(DEVICE_PLUGIN_SOCKET)) {
        throw new Error(
          `${DEVICE_PLUGIN_SOCKET} exists and no test cluster is registered: a kubelet runs on this host; refusing to start test kubelets beside it`,
        );
      }
      const snap = snapshotHost();
      next = { sysctls: snap.sysctls, created: SHARED_HOST_PATHS.filter((p) => !snap.existing.includes(p)), users: [] };
    }
    if (!next.users.some((u) => u.id === id)) next.users.push({ id, dir });
    const inotify = `/proc/sys/${INOTIFY_INSTANCES}`;
    if (Number(readFileSync(inotify, 'utf8').trim()) < MIN_INOTIFY_INSTANCES) {
      await writeFile(inotify, `${MIN_INOTIFY_INSTANCES}\n`);
    }
    return [next, undefined];
  });
}

/**
 * Drops the registration of `id`. When no live cluster remains, restores the recorded sysctls
 * and removes the shared paths that did not exist before. Returns true when it did restore.
 * Idempotent.
 */
export async function releaseHostUser(id: string): Promise<boolean> {
  return withRegistry(async (r) => {
    if (r === undefined) return [undefined, false];
    r.users = r.users.filter((u) => u.id !== id);
    if (r.users.length > 0) return [r, false];
    await restoreHost(r);
    return [undefined, true];
  });
}

/** Writes back the recorded sysctls and removes the shared paths that did not exist before. */
async function restoreHost(r: Registry): Promise<void> {
  for (const [key, value] of Object.entries(r.sysctls)) await writeFile(`/proc/sys/${key}`, `${value}\n`);
  for (const p of [...r.created].reverse()) {
    if (OWNED_WHEN_CREATED.has(p)) await rm(p, { recursive: true, force: true });
    else await rmdir(p).catch(() => {}); // missing, or someone else's files are in it now
  }
}

/** The ids of the clusters registered now (stale ones dropped). */
export async function hostUsers(): Promise<string[]> {
  return withRegistry(async (r) => [r, (r?.users ?? []).map((u) => u.id)]);
}
