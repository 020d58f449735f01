import type { Socket } from 'node:net';
import { DotmeshError } from '@dotmesh/core';
import type { Logger } from '../log.ts';
import type { ClusterView } from './view.ts';

/**
 * The connections of transfers with the other nodes of this cluster, by node: the commits this
 * node receives into its replicas (from a branch's master) and the ones it sends (replication,
 * handoffs). When the view sees a node gone — its `servers/addresses/<id>` key deleted, so its
 * lease expired and its host has not answered etcd for a whole TTL — every connection with it
 * is destroyed at once, instead of waiting for the stream's idle timeout
 * (`transferIdleTimeoutMs`, 30 s by default):
 * - a receive fails like any interrupted receive: its mutation is undone, nothing of the
 *   half-received commit is visible, and the dot's lock is released, so a failover to this node
 *   does not wait for the stream;
 * - a send fails, and replication tries the node again when it is back.
 * A node restarted within its TTL never loses its address key: its transfers are not cut.
 */
export class PeerTransfers {
  readonly #view: Pick<ClusterView, 'onChange' | 'node'>;
  readonly #logger: Logger;
  readonly #byNode = new Map<string, Set<Socket>>();
  #unsubscribe: (() => void) | undefined;
  #cut = 0;

  constructor(view: Pick<ClusterView, 'onChange' | 'node'>, logger: Logger) {
    this.#view = view;
    this.#logger = logger;
  }

  /** Cuts the transfers of every node the view sees gone, from now on. */
  start(): void {
    this.#unsubscribe = this.#view.onChange((change) => {
      if (change.kind === 'node' && !this.#view.node(change.nodeId)) this.cut(change.nodeId);
    });
  }

  stop(): void {
    this.#unsubscribe?.();
  }

  /** A connection carrying a transfer with node `nodeId`, until it closes. */
  track(nodeId: string, socket: Socket): void {
    if (socket.destroyed) return;
    let sockets = this.#byNode.get(nodeId);
    if (!sockets) {
      sockets = new Set();
      this.#byNode.set(nodeId, sockets);
    }
    if (sockets.has(socket)) return;
    sockets.add(socket);
    const set = sockets;
    socket.once('close', () => {
      set.delete(socket);
      if (set.size === 0 && this.#byNode.get(nodeId) === set) this.#byNode.delete(nodeId);
    });
  }

  /** Destroys every transfer connection with `nodeId` (gone); returns how many there were. */
  cut(nodeId: string): number {
    const sockets = this.#byNode.get(nodeId);
    this.#byNode.delete(nodeId);
    if (!sockets || sockets.size === 0) return 0;
    const count = sockets.size;
    const reason = new DotmeshError(
      'UNAVAILABLE',
      `node ${nodeId} is gone (its lease in the cluster store expired): the transfer with it was cut`,
      { hint: 'replication sends the branch again once the node is back', data: { node: nodeId } },
    );
    for (const socket of sockets) socket.destroy(reason);
    this.#cut += count;
    this.#logger.warn(
      { node: nodeId, connections: count },
      `node ${nodeId} is gone: cut the transfers with it at once (a commit half-received from it is discarded, its dot free again)`,
    );
    return count;
  }

  /** `peerTransfers.*` for DumpInternalState: connections open per node, and cut so far. */
  state(): Record<string, string> {
    return {
      'peerTransfers.cut': String(this.#cut),
      ...Object.fromEntries([...this.#byNode].map(([node, s]) => [`peerTransfers.open.${node}`, String(s.size)])),
    };
  }
}
