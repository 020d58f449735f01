import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError, isDotmeshError } from '@dotmesh/core';
import type { Store } from '@dotmesh/store';
import type { Logger } from '../log.ts';
import { type Presence, refuseClash } from './presence.ts';

/**
 * A pool's claim in the cluster: its node's address record (`servers/addresses/<pool id>`) on
 * the lease of the server that holds it (the pool lock beside the pool file keeps a second
 * server of the same host off it first). A server about to serve a pool whose record names
 * another place (a replacement node that adopted the pool's volume, or a copy of the pool)
 * waits for that record's lease to expire — the holder died and its lease runs out within
 * `leaseTtlSeconds` — and takes the pool over then. A record still there after that is renewed
 * by a live server: refused with refuseClash's CONFLICT, naming the holder's addresses.
 * `extraSeconds` (default 1): how much longer than its TTL a lease may run — a leader change
 * renews every lease; a member that just restarted a cluster from its data (an etcd recovery)
 * renews them all at once, and a revocation then waits for its election too.
 */
export async function awaitPoolClaim(
  store: Store,
  p: Pick<Presence, 'nodeId' | 'addresses' | 'clusterPort'>,
  o: { readonly leaseTtlSeconds: number; readonly logger: Logger; readonly pollMs?: number; readonly extraSeconds?: number },
): Promise<void> {
  // etcd may give a lease a little longer than its TTL (a leader change renews it): one more second.
  const extra = o.extraSeconds ?? 1;
  const deadline = Date.now() + (o.leaseTtlSeconds + extra) * 1000;
  let waited = false;
  for (;;) {
    try {
      await refuseClash(store, p);
      if (waited) o.logger.info({ nodeId: p.nodeId }, "the pool's earlier holder's lease expired: taking the pool over");
      return;
    } catch (e) {
      if (!isDotmeshError(e) || e.code !== 'CONFLICT') throw e;
      if (Date.now() >= deadline) {
        throw new DotmeshError('CONFLICT', `${e.message} (its record was renewed for ${o.leaseTtlSeconds + extra} s: it runs)`, {
          hint: e.hint ?? 'stop the server holding this pool',
          ...(e.data === undefined ? {} : { data: e.data }),
        });
      }
      if (!waited) {
        o.logger.warn(
          { nodeId: p.nodeId, holder: e.data, leaseTtlSeconds: o.leaseTtlSeconds },
          'another server holds this pool in the cluster: waiting for its lease to expire',
        );
      }
      waited = true;
      await sleep(o.pollMs ?? 500);
    }
  }
}
