import { DotmeshError } from '@dotmesh/core';
import { PeerSide, type TransferEngine } from '@dotmesh/transfer';
import type { Caller } from '../dots/caller.ts';
import type { NodeTls } from './node-transport.ts';
import type { PeerTransfers } from './peer-transfers.ts';
import type { ClusterNode, ClusterView } from './view.ts';

/** What sending a branch's commits to another node of this cluster needs. */
export interface NodeSendDeps {
  readonly view: Pick<ClusterView, 'node'>;
  readonly transfers: TransferEngine<Caller>;
  readonly tls: NodeTls;
  readonly idleTimeoutMs: () => number;
  /** The transfers with other nodes, cut when their node is gone. */
  readonly peers: Pick<PeerTransfers, 'track'>;
}

/**
 * The live node `nodeId` with a node-to-node endpoint, or UNAVAILABLE (`what` names the work
 * that needs it).
 */
export function requireLiveNode(view: Pick<ClusterView, 'node'>, nodeId: string, what: string): ClusterNode {
  const target = view.node(nodeId);
  if (!target || target.clusterPort === 0 || target.addresses.length === 0) {
    throw new DotmeshError('UNAVAILABLE', `cannot ${what}: node ${nodeId} is not a live node of this cluster`, {
      hint: 'list the nodes with DumpInternalState (nodes.*), or start that node',
      data: { node: nodeId },
    });
  }
  return target;
}

/**
 * Makes node `to` hold every commit of branch `fsId`'s history (of dot `dotId`), into its
 * replica, over its node-to-node endpoint (TransferEngine.sendToNode: incremental from the
 * newest commit both hold; the replica's own diverged commits go to a -DIVERGED- branch there).
 * The one way commits reach another node of this cluster: handoffs and replication both use it.
 */
export async function sendBranchToNode(deps: NodeSendDeps, dotId: string, fsId: string, to: string): Promise<void> {
  const target = requireLiveNode(deps.view, to, `send branch ${fsId} to node ${to}`);
  const peer = new PeerSide({
    baseUrl: `https://${hostOf(target.addresses[0]!)}:${target.clusterPort}`,
    user: '',
    apiKey: '',
    idleTimeoutMs: deps.idleTimeoutMs(),
    node: { nodeId: to, tls: deps.tls },
    onSocket: (socket) => deps.peers.track(to, socket),
  });
  try {
    await deps.transfers.sendToNode(peer, dotId, fsId);
  } finally {
    peer.close();
  }
}

function hostOf(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
