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
 * Writes this node's address record under its lease. On a cluster of several nodes (a
 * cluster port), a live record of the same node id from another place (other addresses or
 * cluster port: a copy of this pool running elsewhere) is a clash: CONFLICT, and nothing is
 * written. The same addresses and port are this node's own earlier process (restarted within
 * its lease TTL), which the new record replaces. A single node (no cluster port) has no one to
 * clash with: the pool lock keeps a second server off its pool.
 */
export async function advertisePresence(store: Store, leaseId: string, p: Presence): Promise<void> {
  const key = KEYS.address(p.nodeId);
  const existing = await store.get(key);
  const value: AddressValue = { Id: p.nodeId, Addresses: [...p.addresses], ClusterPort: p.clusterPort, ApiPort: p.apiPort };
  if (existing && existing.lease !== leaseId && p.clusterPort !== 0) {
    const old = parseValue<AddressValue>(existing.value);
    const same =
      old !== undefined &&
      JSON.stringify(old.Addresses) === JSON.stringify(value.Addresses) &&
      old.ClusterPort === value.ClusterPort;
    if (!same) {
      throw new DotmeshError(
        'CONFLICT',
        `node id ${p.nodeId} is already live at ${(old?.Addresses ?? []).join(', ') || 'another address'}: this pool's id clashes with a running node`,
        {
          hint: 'a copy of this pool runs elsewhere: stop it, or give this host its own pool',
          data: { nodeId: p.nodeId, addresses: old?.Addresses ?? [] },
        },
      );
    }
  }
  await store.put(key, JSON.stringify(value), { lease: leaseId });
}
