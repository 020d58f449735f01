import type { Store } from '@dotmesh/store';
import type { Logger } from '../log.ts';
import { KEYS, parseValue } from './store-keys.ts';

/** `servers/restarting/<nodeId>`: a server that stopped cleanly and means to come back. */
export interface RestartRecord {
  readonly node_id: string;
  /** When it stopped (ISO 8601). */
  readonly since: string;
  readonly grace_seconds: number;
}

/**
 * A clean stop of a server (SIGTERM: an upgrade, a pod replaced, `dm cluster stop`) announces a
 * planned restart: `servers/restarting/<nodeId>` on a lease of `graceSeconds` of its own. While
 * the key lives, failover leaves the node's branches where they are even once its node lease
 * expired — a restart that takes longer than the lease TTL (a new pod, an image to load) moves
 * nothing — and the server deletes the key when it is back. A host that dies without a clean
 * stop announces nothing: failover acts one lease TTL after it went silent. Best effort: a store
 * that does not answer leaves no key (failover then acts as for a crash), said in the log.
 */
export async function announceRestart(store: Store, nodeId: string, graceSeconds: number, logger: Logger): Promise<void> {
  if (graceSeconds <= 0) return;
  try {
    const lease = await store.grantLease(graceSeconds);
    const record: RestartRecord = { node_id: nodeId, since: new Date().toISOString(), grace_seconds: graceSeconds };
    await store.put(KEYS.restarting(nodeId), JSON.stringify(record), { lease });
    logger.info({ graceSeconds }, 'planned restart announced: for this long no other node takes this node’s branches over');
  } catch (err) {
    logger.warn({ err }, 'could not announce a planned restart: if this node stays away past its lease, its branches fail over');
  }
}

/** Deletes this node's planned-restart key (it is back). */
export async function clearRestart(store: Store, nodeId: string): Promise<void> {
  await store.delete(KEYS.restarting(nodeId));
}

/** The planned restart `nodeId` announced, while its grace lasts. */
export async function pendingRestart(store: Store, nodeId: string): Promise<RestartRecord | undefined> {
  const kv = await store.get(KEYS.restarting(nodeId));
  return kv ? parseValue<RestartRecord>(kv.value) : undefined;
}
