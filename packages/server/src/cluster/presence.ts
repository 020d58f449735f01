import { DotmeshError } from '@dotmesh/core';
import type { Store } from '@dotmesh/store';
import { type AddressRecord, KEYS, parseValue } from './store-keys.ts';

/** What a node advertises about itself (`servers/addresses/<id>`, bound to its lease). */
export interface Presence {
  readonly nodeId: string;
  readonly addresses: readonly string[];
  /** The node-to-node endpoint's port (0: none). */
  readonly clusterPort: number;
  /** The API's plain HTTP port. */
  readonly apiPort: number;
}

type AddressValue = AddressRecord & { readonly ClusterPort?: number; readonly ApiPort?: number };

/**
 * Refuses (CONFLICT, nothing written) when a live record of `p.nodeId` from another process
 * names another place: other addresses, or another cluster port (`p.clusterPort` 0: not known
 * yet, addresses only). That is a copy of this pool running elsewhere. The same addresses and
 * port are this node's own earlier process (restarted within its lease TTL). A record bound to
 * `ownLease` is this process's own. A node of several calls it before it touches the store, so
 * a clash changes nothing there.
 */
export async function refuseClash(
  store: Store,
  p: Pick<Presence, 'nodeId' | 'addresses' | 'clusterPort'>,
  ownLease?: string,
): Promise<void> {
  const existing = await store.get(KEYS.address(p.nodeId));
  if (!existing || (ownLease !== undefined && existing.lease === ownLease)) return;
  const old = parseValue<AddressValue>(existing.value);
  const same =
    old !== undefined &&
    JSON.stringify(old.Addresses) === JSON.stringify([...p.addresses]) &&
    (p.clusterPort === 0 || old.ClusterPort === p.clusterPort);
  if (same) return;
  throw new DotmeshError(
    'CONFLICT',
    `node id ${p.nodeId} is already live at ${(old?.Addresses ?? []).join(', ') || 'another address'}: this pool's id clashes with a running node`,
    {
      hint: 'a copy of this pool runs elsewhere: stop it, or give this host its own pool',
      data: { nodeId: p.nodeId, addresses: old?.Addresses ?? [] },
    },
  );
}

/**
 * Writes this node's address record under its lease. On a cluster of several nodes (a
 * cluster port), a clash with a live record of the same node id is refused (refuseClash). A
 * single node (no cluster port) has no one to clash with: the pool lock keeps a second server
 * off its pool.
 */
export async function advertisePresence(store: Store, leaseId: string, p: Presence): Promise<void> {
  if (p.clusterPort !== 0) await refuseClash(store, p, leaseId);
  const value: AddressValue = { Id: p.nodeId, Addresses: [...p.addresses], ClusterPort: p.clusterPort, ApiPort: p.apiPort };
  await store.put(KEYS.address(p.nodeId), JSON.stringify(value), { lease: leaseId });
}
