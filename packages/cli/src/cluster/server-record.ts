import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ServerConfig } from '@dotmesh/rpc';

/**
 * Which dotmesh-server a pool's cluster runs: `<stateDir>/server-bin.json` (0600),
 * `{serverBin, version}`, written by `dm cluster init`, `start` and `upgrade` once the server
 * answers. `start` and `init` run that binary again unless told otherwise, so a restart after
 * `dm cluster upgrade --server-bin X` keeps running X, never an older server found next to dm
 * or on PATH; and they refuse a binary older than the recorded version (the pool may have been
 * migrated by the newer one).
 */
export interface ServerRecord {
  readonly serverBin: string;
  readonly version: string;
}

export function serverRecordPath(config: Pick<ServerConfig, 'stateDir'>): string {
  return join(config.stateDir, 'server-bin.json');
}

/** The record, or null when there is none (a cluster from before records existed) or it is unreadable. */
export async function readServerRecord(config: Pick<ServerConfig, 'stateDir'>): Promise<ServerRecord | null> {
  const text = await readFile(serverRecordPath(config), 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const { serverBin, version } = JSON.parse(text) as Partial<Record<keyof ServerRecord, unknown>>;
    return typeof serverBin === 'string' && serverBin !== '' && typeof version === 'string' && version !== ''
      ? { serverBin, version }
      : null;
  } catch {
    return null;
  }
}

/** Replaces the record atomically. */
export async function writeServerRecord(config: Pick<ServerConfig, 'stateDir'>, record: ServerRecord): Promise<void> {
  const file = serverRecordPath(config);
  const tmp = `${file}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}
