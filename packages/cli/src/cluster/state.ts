import { readFile } from 'node:fs/promises';
import { DotmeshError } from '@dotmesh/core';
import { DEFAULT_POOL_DIR, parseServerConfigText, resolveServerConfig, type ServerConfig, serverConfigPath } from '@dotmesh/rpc';
import type { CommandContext } from '../context.ts';

/**
 * Facts every `dm cluster` command of this host needs about a pool dir: its server config (as
 * `dm cluster init` wrote it), the address to reach its server, and how to start it again.
 */

/** The server config of a pool dir and its file; `existing` is false (and the config the defaults) when there is none. */
export async function loadServerConfig(poolDir: string): Promise<{ config: ServerConfig; file: string; existing: boolean }> {
  const defaults = resolveServerConfig({ poolDir });
  const file = serverConfigPath(defaults);
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return { config: defaults, file, existing: false };
  try {
    return { config: parseServerConfigText(text), file, existing: true };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new DotmeshError('INVALID_ARGUMENT', `${file}: ${why}`, {
      hint: 'fix the file (dm cluster init wrote it), or remove it and run dm cluster init again',
    });
  }
}

/** The config of the cluster in `poolDir`; UNAVAILABLE naming the dir when there is none. */
export async function requireCluster(poolDir: string): Promise<{ config: ServerConfig; file: string }> {
  const { config, file, existing } = await loadServerConfig(poolDir);
  if (!existing) {
    throw new DotmeshError('UNAVAILABLE', `No dotmesh cluster in ${poolDir} (no ${file})`, {
      hint: "start one with 'dm cluster init', or give its --use-pool-dir",
    });
  }
  return { config, file };
}

/** PERMISSION_DENIED unless dm runs as root. */
export function requireRoot(ctx: CommandContext, command: string, why: string): void {
  if (ctx.runtime.uid !== 0) {
    throw new DotmeshError('PERMISSION_DENIED', `${command} must run as root: ${why}`, { hint: 'run it again with sudo' });
  }
}

/** Where this host reaches a server listening on `listenHost` (loopback for a wildcard address). */
export function localHost(listenHost: string): string {
  return listenHost === '0.0.0.0' || listenHost === '::' ? '127.0.0.1' : listenHost;
}

/** The command that starts this pool's server again. */
export function startCommand(poolDir: string): string {
  return poolDir === DEFAULT_POOL_DIR ? 'dm cluster start' : `dm cluster start --use-pool-dir ${poolDir}`;
}
