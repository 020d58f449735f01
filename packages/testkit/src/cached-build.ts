import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import { acquireFlock } from './flock.ts';
import { killProcessesUsing, runCommand } from './process.ts';
import { removeTempDir } from './tmp.ts';

/** Where test images and root filesystems are cached, outside any clone. */
export const DEFAULT_IMAGE_CACHE = '/var/cache/dotmesh-test/images';

/** `cacheDir`, else `$DOTMESH_TEST_IMAGE_CACHE`, else DEFAULT_IMAGE_CACHE. */
export function imageCacheDir(cacheDir?: string, env: NodeJS.ProcessEnv = process.env): string {
  return cacheDir ?? (env.DOTMESH_TEST_IMAGE_CACHE || DEFAULT_IMAGE_CACHE);
}

export interface CachedFileOptions {
  /** The cached file; its name must change whenever its inputs do. */
  readonly target: string;
  /** Makes the file inside `work` (a fresh directory next to the target) and returns its path. */
  readonly build: (work: string) => Promise<string>;
  readonly timeoutMs: number;
  readonly log?: (s: string) => void;
  /**
   * Names (in the target's directory) of earlier versions of the same file: once a new target is
   * built, each one no builder holds is removed with its lock file, so that a cache keyed on its
   * inputs does not grow with every change of them.
   */
  readonly supersedes?: (name: string) => boolean;
}

const inProcess = new Map<string, Promise<string>>();

/**
 * Returns `target`, building it first when missing. Safe to call concurrently, from this process
 * or others: builders take an exclusive flock on `<target>.lock` (released by the kernel if the
 * holder dies); the file appears by an atomic rename, so a reader never sees a partial one.
 */
export function ensureCachedFile(o: CachedFileOptions): Promise<string> {
  if (existsSync(o.target)) return Promise.resolve(o.target);
  let pending = inProcess.get(o.target);
  if (pending === undefined) {
    pending = buildLocked(o).finally(() => inProcess.delete(o.target));
    inProcess.set(o.target, pending);
  }
  return pending;
}

async function buildLocked(o: CachedFileOptions): Promise<string> {
  const log = o.log ?? (() => {});
  const cacheDir = join(o.target, '..');
  await mkdir(cacheDir, { recursive: true });
  const release = await acquireFlock(`${o.target}.lock`, o.timeoutMs + 60_000);
  try {
    if (existsSync(o.target)) return o.target; // another builder finished while we waited
    // Holding the lock, a build directory for this target is a dead builder's; its debootstrap
    // or dpkg may outlive it (a SIGKILLed runner) and must stop writing there before it goes.
    const prefix = `.build-${o.target.slice(cacheDir.length + 1)}-`;
    for (const name of await readdir(cacheDir)) {
      if (!name.startsWith(prefix)) continue;
      const stale = join(cacheDir, name);
      log(`removing ${stale}, left by a dead builder`);
      await killProcessesUsing(stale);
      await removeTempDir(stale);
    }
    const work = await mkdtemp(join(cacheDir, prefix));
    try {
      const made = await o.build(work);
      await rename(made, o.target);
      if (o.supersedes) await removeSuperseded(cacheDir, o.target, o.supersedes, log);
    } finally {
      await killProcessesUsing(work); // what a timed-out debootstrap left running
      await removeTempDir(work); // unmounts whatever debootstrap left mounted first
    }
    return o.target;
  } finally {
    await release();
  }
}

/**
 * Keeps a cached file (built by ensureCachedFile) from being removed as superseded while it is
 * used (a test cluster imports a product image into nodes it adds later, while another test
 * process may build a newer version): a shared lock on its lock file until `cleanup` runs.
 * Throws when the file is gone already.
 */
export async function holdCachedFile(target: string, cleanup: Cleanup): Promise<void> {
  const release = await acquireFlock(`${target}.lock`, 60_000, { shared: true });
  cleanup.add(release, `release the hold on ${target}`);
  if (!existsSync(target)) throw new Error(`${target} was removed (superseded by a newer build) before it could be held`);
}

async function removeSuperseded(
  cacheDir: string,
  target: string,
  supersedes: (name: string) => boolean,
  log: (s: string) => void,
) {
  for (const name of await readdir(cacheDir)) {
    const path = join(cacheDir, name);
    if (path === target || name.endsWith('.lock') || !supersedes(name)) continue;
    // A builder holding its lock is making it right now, or a user holds it (holdCachedFile): leave it.
    const release = await acquireFlock(`${path}.lock`, 0).catch(() => undefined);
    if (!release) continue;
    try {
      log(`removing ${path}, superseded by ${target}`);
      await rm(path, { force: true });
      await rm(`${path}.lock`, { force: true });
    } finally {
      await release();
    }
  }
}

export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';

export interface DebootstrapOptions {
  readonly root: string;
  readonly suite: string;
  readonly variant: string;
  readonly include: readonly string[];
  /** Directories (relative to the root) whose content is removed afterwards. */
  readonly prune: readonly string[];
  readonly mirror?: string;
  readonly timeoutMs: number;
  readonly log?: (s: string) => void;
}

/** A Debian root filesystem made by debootstrap, with caches and docs pruned. */
export async function debootstrapRootfs(o: DebootstrapOptions): Promise<void> {
  const log = o.log ?? (() => {});
  const t0 = Date.now();
  log(`debootstrap ${o.suite} (${o.include.join(', ')}) into ${o.root}`);
  const args = [`--variant=${o.variant}`, `--include=${o.include.join(',')}`, o.suite, o.root, o.mirror ?? DEBIAN_MIRROR];
  await runCommand('debootstrap', args, { timeoutMs: o.timeoutMs }).catch(async (e: Error) => {
    const detail = await runCommand('tail', ['-n', '30', join(o.root, 'debootstrap', 'debootstrap.log')]).then(
      (r) => `\n${r.stdout}`,
      () => '',
    );
    throw new Error(`${e.message}${detail}`, { cause: e });
  });
  log(`debootstrap took ${Math.round((Date.now() - t0) / 1000)} s`);
  for (const p of o.prune) {
    const dir = join(o.root, p);
    for (const name of existsSync(dir) ? await readdir(dir) : []) await rm(join(dir, name), { recursive: true, force: true });
  }
  await mkdir(join(o.root, 'var/cache/apt/archives/partial'), { recursive: true });
  await mkdir(join(o.root, 'var/lib/apt/lists/partial'), { recursive: true });
}
