import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import type { StorageDriver } from '@dotmesh/storage';

/** What to do when the pool is full, in the words of `dm`. */
export const POOL_FULL_HINT =
  "delete dots ('dm dot delete') or commits ('dm reset') you no longer need, or grow the pool ('dm cluster grow --pool-size <size>')";

/**
 * Wraps a driver so that every out-of-space failure, whatever raised it (a btrfs command, a
 * file write, a raw ENOSPC), reaches callers as one POOL_FULL error naming the pool and what to
 * do; the original failure stays in `cause` and in `data.detail`. Every other result and error
 * passes through unchanged. Works for any method of the driver (also ones added later): methods
 * returning a promise get the mapping, synchronous ones (paths, streams) are returned as is.
 */
export function withPoolFullErrors(driver: StorageDriver, pool: string): StorageDriver {
  return new Proxy(driver, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const result: unknown = value.apply(target, args);
        return result instanceof Promise ? result.catch((e: unknown) => Promise.reject(explainPoolFull(e, pool))) : result;
      };
    },
  });
}

/** POOL_FULL (or ENOSPC) → POOL_FULL naming the pool; anything else unchanged. */
export function explainPoolFull(e: unknown, pool: string): unknown {
  const full = (isDotmeshError(e) && e.code === 'POOL_FULL') || (e as NodeJS.ErrnoException | undefined)?.code === 'ENOSPC';
  if (!full || (isDotmeshError(e) && e.data?.pool === pool)) return e;
  const detail = e instanceof Error ? e.message : String(e);
  return new DotmeshError('POOL_FULL', `The pool ${pool} is full: no space left on it`, {
    hint: POOL_FULL_HINT,
    data: { pool, detail },
    cause: e,
  });
}
