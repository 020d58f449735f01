import { join } from 'node:path';

/**
 * Where `dm` keeps Node's compile cache (V8's code for its modules, reused by every later start
 * of the same build on the same Node): `$XDG_CACHE_HOME/dotmesh/node-compile-cache`, else
 * `$HOME/.cache/dotmesh/node-compile-cache`; undefined (no cache) without either, or when
 * `NODE_DISABLE_COMPILE_CACHE` is set. Node keys its entries by its own version and each file's
 * content, so an upgraded dm never runs stale code; a directory that cannot be written only
 * means no cache.
 */
export function compileCacheDir(env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  const base = env.XDG_CACHE_HOME?.startsWith('/')
    ? env.XDG_CACHE_HOME
    : env.HOME?.startsWith('/')
      ? join(env.HOME, '.cache')
      : undefined;
  return base === undefined ? undefined : join(base, 'dotmesh', 'node-compile-cache');
}
