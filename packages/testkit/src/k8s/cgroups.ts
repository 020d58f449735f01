import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseMountInfo } from '../loop.ts';

/**
 * A kubelet's own cgroup root on a cgroup v1 (or hybrid) host: `/<name>` in every mounted
 * hierarchy, made before the kubelet starts (it expects the root to exist in each), with the
 * cpuset hierarchy's `cpuset.cpus`/`cpuset.mems` copied from the top (a v1 cpuset without them
 * refuses tasks). Each node has its own, so kubelets never see each other's pods.
 */

/** Mount points of every cgroup hierarchy (v1 controllers, named ones, and the v2 "unified" one). */
export function cgroupHierarchies(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  return parseMountInfo(mountinfo)
    .filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2')
    .map((m) => m.mountPoint);
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new Error(`cgroup root name must be a plain name, got ${JSON.stringify(name)}`);
}

export async function createCgroupRoot(name: string): Promise<void> {
  checkName(name);
  for (const h of cgroupHierarchies()) {
    const dir = join(h, name);
    await mkdir(dir, { recursive: true });
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if (existsSync(join(h, f)) && (await readFile(join(dir, f), 'utf8')).trim() === '')
        await copyFile(join(h, f), join(dir, f));
    }
  }
}

/** Directories under `dir`, children before their parents, `dir` last. */
async function depthFirst(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }))
    if (e.isDirectory()) out.push(...(await depthFirst(join(dir, e.name))));
  out.push(dir);
  return out;
}

/**
 * Removes `/<name>` and every cgroup below it from every hierarchy. A cgroup whose last task has
 * just been killed may stay busy for a moment: each removal is retried for up to `timeoutMs`;
 * then the error names the cgroups still holding tasks. Idempotent.
 */
export async function removeCgroupRoot(name: string, timeoutMs = 10_000): Promise<void> {
  checkName(name);
  const deadline = Date.now() + timeoutMs;
  const stuck: string[] = [];
  for (const h of cgroupHierarchies()) {
    const top = join(h, name);
    if (!existsSync(top)) continue;
    for (const dir of await depthFirst(top)) {
      for (;;) {
        try {
          await rmdir(dir);
          break;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || Date.now() > deadline) {
            const tasks = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
            stuck.push(`${dir} (${code}; tasks: ${tasks.trim().split('\n').filter(Boolean).join(' ') || 'none'})`);
            break;
          }
          await sleep(100);
        }
      }
    }
  }
  if (stuck.length > 0) throw new Error(`could not remove cgroups: ${stuck.join('; ')}`);
}

/** The hierarchies in which `/<name>` exists (empty once removed). */
export function cgroupRootLeftovers(name: string): string[] {
  checkName(name);
  return cgroupHierarchies()
    .map((h) => join(h, name))
    .filter((p) => existsSync(p));
}
