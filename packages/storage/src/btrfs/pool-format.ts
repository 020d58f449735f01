import { DotmeshError } from '@dotmesh/core';
import { newPoolId } from '../ids.ts';
import { readJsonObject, writeJsonAtomic } from './fsutil.ts';

/** The newest pool format this code reads and writes. */
export const POOL_FORMAT_VERSION = 1;

export interface PoolFile {
  readonly formatVersion: number;
  /** 16 lowercase hex characters, random at pool creation: the node's identity. */
  readonly poolId: string;
  readonly createdAt: string;
}

/** A migration takes a pool root from version `from` to `from + 1`. Must be idempotent. */
export type Migration = (root: string) => Promise<void>;
/** from-version → migration. Empty today: format 1 is the first. */
export const MIGRATIONS: Readonly<Record<number, Migration>> = {};

export async function readPoolFile(path: string): Promise<PoolFile | undefined> {
  const raw = await readJsonObject(path);
  if (!raw) return undefined;
  if (typeof raw.formatVersion !== 'number' || typeof raw.poolId !== 'string' || !/^[0-9a-f]{16}$/.test(raw.poolId)) {
    throw new DotmeshError('POOL_UNAVAILABLE', `${path} is not a valid pool file`);
  }
  return { formatVersion: raw.formatVersion, poolId: raw.poolId, createdAt: String(raw.createdAt ?? '') };
}

/**
 * Makes sure `<root>/pool.json` exists and is at `target` format: writes a new one (random
 * poolId), refuses a newer format with UNSUPPORTED, or runs migrations one version at a
 * time, rewriting pool.json after each (a crash in between re-runs only the unfinished step).
 */
export async function ensurePoolFile(
  root: string,
  options: { migrations?: Readonly<Record<number, Migration>>; target?: number; now?: () => Date } = {},
): Promise<PoolFile> {
  const target = options.target ?? POOL_FORMAT_VERSION;
  const migrations = options.migrations ?? MIGRATIONS;
  const path = `${root}/pool.json`;
  let pool = await readPoolFile(path);
  if (!pool) {
    pool = { formatVersion: target, poolId: newPoolId(), createdAt: (options.now?.() ?? new Date()).toISOString() };
    await writeJsonAtomic(path, pool);
    return pool;
  }
  if (pool.formatVersion > target) {
    throw new DotmeshError(
      'UNSUPPORTED',
      `the pool at ${root} has format version ${pool.formatVersion}, newer than ${target} which this dotmesh supports`,
      {
        hint: 'upgrade dotmesh-server to a version that knows this pool format',
      },
    );
  }
  while (pool.formatVersion < target) {
    const step = migrations[pool.formatVersion];
    if (!step) throw new Error(`no migration from pool format ${pool.formatVersion}`);
    await step(root);
    pool = { ...pool, formatVersion: pool.formatVersion + 1 };
    await writeJsonAtomic(path, pool);
  }
  return pool;
}
