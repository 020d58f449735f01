import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import { mountsUnder, unmountUnder } from './loop.ts';

/** Every temporary name a test makes starts with this, so leftovers can be found and removed. */
export const TEST_NAME_PREFIX = 'dmtest-';

/**
 * Names of folders made by tests with mkdtemp: makeTempDir's `dmtest-[<prefix>-]XXXXXX`, and the
 * `dm-<what>-XXXXXX` form of a direct `mkdtemp(join(tmpdir(), 'dm-<what>-'))`, which no test
 * may use (scripts/test-isolation.test.ts) but a stray one would. A run's root, `dmtest-<name>`,
 * does not match.
 */
export function isTestDirName(name: string): boolean {
  return /^dmtest-(?:[A-Za-z0-9._-]+-)?[A-Za-z0-9]{6}$/.test(name) || /^(?:dm|dotmesh)-[a-z][a-z-]*-[A-Za-z0-9]{6}$/.test(name);
}

/**
 * The directory tests put their files in: `$DOTMESH_TEST_ROOT` (set by scripts/test-all to a
 * per-run directory, created here if missing) or the OS temp dir.
 */
export function testRoot(env: NodeJS.ProcessEnv = process.env): string {
  const root = env.DOTMESH_TEST_ROOT;
  if (root === undefined || root === '') return tmpdir();
  const abs = resolve(root);
  mkdirSync(abs, { recursive: true });
  return abs;
}

/**
 * Creates a fresh directory `<testRoot>/dmtest-<prefix>-XXXXXX`. With `cleanup`, its removal is
 * registered there: anything still mounted under it is unmounted first, and if a mount remains
 * the directory is left in place (and the step fails) rather than deleting through the mount.
 */
export async function makeTempDir(prefix: string, cleanup?: Cleanup): Promise<string> {
  if (!/^[A-Za-z0-9._-]*$/.test(prefix))
    throw new Error(`makeTempDir: prefix must be a plain name, got ${JSON.stringify(prefix)}`);
  const dir = await mkdtemp(join(testRoot(), `${TEST_NAME_PREFIX}${prefix}${prefix === '' ? '' : '-'}`));
  cleanup?.add(() => removeTempDir(dir), `remove ${dir}`);
  return dir;
}

/** Removes a test directory, refusing to recurse into anything still mounted below it. */
export async function removeTempDir(dir: string): Promise<void> {
  if (mountsUnder(dir).length > 0) await unmountUnder(dir);
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`not removing ${dir}: still mounted: ${left.join(', ')}`);
  await rm(dir, { recursive: true, force: true });
}
