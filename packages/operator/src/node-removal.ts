import { DotmeshError } from '@dotmesh/core';
import type { DotmeshClient } from '@dotmesh/rpc/client';
import { removeNode } from '@dotmesh/rpc/remove-node';
import type { CoreV1Api, V1ConfigMap, V1Node, V1Pod } from '@kubernetes/client-node';
import { adminClient } from './admin-client.ts';
import { CONFIGMAP_NAME } from './config.ts';
import {
  type Departure,
  type MemberInfo,
  memberAddress,
  planDepartures,
  podAddressesOf,
  type ServerPodInfo,
} from './departures.ts';
import { eventOn } from './events.ts';
import type { Logger } from './logger.ts';
import { isServing } from './plan.ts';
import { NODE_LABEL } from './server-pod.ts';

/**
 * Applies departures.ts at each reconcile step: through the API of a server serving on a
 * selected node (as admin), it lists the etcd members and the live servers, removes at most one
 * departed node per step (`removeNode`, as `dm cluster remove-node` does, never `--force`), and says
 * which deselected nodes' server pods must stay until their removal is done or allowed. Each
 * removal is a log line and a Normal Event `NodeRemoved` on the ConfigMap; a removal the quorum
 * rule refuses (`NodeRemovalRefused`) or that fails (`NodeRemovalFailed`) is a Warning Event,
 * recorded once per node and message, and tried again at later steps. A gone node's planned
 * restart is ended first (EndPlannedRestart): its failover need not wait for the grace.
 */
export interface DepartureContext {
  readonly core: CoreV1Api;
  readonly namespace: string;
  readonly instance: string;
  readonly log: Logger;
}

export interface DepartureStep {
  /** Server pods (of deselected nodes) not to delete in this step. */
  readonly hold: ReadonlySet<string>;
  /** Whether something waits (a lease, a refused or failed removal, the next removal): look again soon. */
  readonly again: boolean;
  /** Dotmesh node ids removed in this step. */
  readonly removed: readonly string[];
}

/** How long a removal may take through the API (moves of branches, etcd's member change). */
const REMOVAL_TIMEOUT_MS = 120_000;

export class NodeDepartures {
  /** What was last reported as refused or failed, by Dotmesh node id (no Event repeated each step). */
  readonly #reported = new Map<string, string>();
  #warnedNoServer = false;
  /** Where each node's server pod last ran (its node's address), by node name. */
  readonly #lastPodAddress = new Map<string, string>();
  readonly #o: DepartureContext;

  constructor(o: DepartureContext) {
    this.#o = o;
  }

  async step(s: {
    readonly nodes: readonly V1Node[];
    readonly selected: ReadonlySet<string>;
    readonly pods: readonly V1Pod[];
    readonly deselectedDeletions: ReadonlySet<string>;
    readonly configMap: V1ConfigMap | undefined;
  }): Promise<DepartureStep> {
    const { log } = this.#o;
    const through = s.pods.find((p) => isServing(p) && p.status?.hostIP && s.selected.has(nodeOf(p)));
    if (!through) {
      if (s.deselectedDeletions.size > 0 && !this.#warnedNoServer) {
        log.warn(
          'no server serves on a selected node: the server pods of deselected nodes go without removing their nodes from the Dotmesh cluster',
          {
            pods: [...s.deselectedDeletions],
          },
        );
        this.#warnedNoServer = true;
      }
      return { hold: new Set(), again: false, removed: [] };
    }
    this.#warnedNoServer = false;
    const client = await adminClient(this.#o, through.status!.hostIP!, REMOVAL_TIMEOUT_MS);
    for (const p of s.pods) if (p.status?.hostIP) this.#lastPodAddress.set(nodeOf(p), p.status.hostIP);
    // A selected node's addresses: its InternalIPs, and where its server pod last ran (a node
    // without an InternalIP whose pod is being made again is still there).
    const selectedAddresses = new Set(
      s.nodes
        .filter((n) => s.selected.has(n.metadata?.name ?? ''))
        .flatMap((n) => [
          ...(n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address),
          ...[this.#lastPodAddress.get(n.metadata?.name ?? '')].filter((a): a is string => a !== undefined),
        ]),
    );
    // A pod whose Node was deleted counts as none (departures.ts): the live servers are then
    // read for its node, whose lease decides.
    const existing = new Set(s.nodes.map((n) => n.metadata?.name));
    const pods: ServerPodInfo[] = s.pods.map((p) => ({
      pod: p.metadata!.name!,
      node: nodeOf(p),
      ...(p.status?.hostIP ? { address: p.status.hostIP } : {}),
      serving: isServing(p),
      nodeGone: !existing.has(nodeOf(p)),
    }));
    const podAddresses = podAddressesOf(pods);
    let members: MemberInfo[] | undefined;
    let servers: { id: string; addresses: string[] }[] = [];
    try {
      members = await client.call('EtcdMembers', {}).then(
        (r) => r.Members.map((m) => ({ name: m.Name, peerUrls: m.PeerUrls, learner: m.Learner })),
        (e: unknown) => {
          if (e instanceof DotmeshError && e.code === 'UNSUPPORTED') return undefined;
          throw e;
        },
      );
      // The live servers (a larger answer) only when some node may have left.
      const away = (members ?? []).some((m) => {
        const a = memberAddress(m);
        return a !== undefined && !selectedAddresses.has(a) && !podAddresses.has(a);
      });
      if (away || s.deselectedDeletions.size > 0) {
        servers = (await client.call('AllDotsAndBranches', {})).Servers.map((x) => ({ id: x.Id, addresses: x.Addresses }));
      }
    } catch (e) {
      // Without the cluster's view nothing is removed, and no deselected node's pod goes.
      log.warn('could not read the etcd members and live servers; keeping the server pods of deselected nodes', {
        through: through.status!.hostIP,
        error: String((e as Error)?.message ?? e),
      });
      return { hold: new Set(s.deselectedDeletions), again: true, removed: [] };
    }
    const plan = planDepartures({
      selectedAddresses,
      pods,
      deselectedDeletions: s.deselectedDeletions,
      liveServers: servers,
      members,
    });
    const hold = new Set([...plan.remove, ...plan.refused].flatMap((d) => (d.pod ? [d.pod] : [])));
    for (const d of plan.refused) {
      await this.#report(s.configMap, d, 'NodeRemovalRefused', `not removing ${describe(d)} from the Dotmesh cluster: ${d.why}`);
    }
    for (const d of plan.waitingForLease) {
      log.info('a node left Kubernetes; its Dotmesh node is removed once its lease expires', {
        node: d.nodeId,
        address: d.address,
      });
    }
    const removed: string[] = [];
    const [next, ...later] = plan.remove;
    if (next) {
      if (!next.live && next.pod === undefined) await this.#endPlannedRestart(client, next);
      try {
        // Never forced: the branches of a gone node are automatic failover's to move (to the node
        // holding the newest commit); until it has, the removal is refused (IN_USE) and tried again.
        const r = await removeNode(client, { node: next.nodeId, to: undefined, force: false });
        removed.push(next.nodeId);
        this.#reported.delete(next.nodeId);
        if (next.pod) hold.delete(next.pod);
        const member =
          r.etcdMember === 'not-managed'
            ? 'not Dotmesh’s etcd'
            : r.etcdMember.removed
              ? `its etcd member removed, ${r.etcdMember.members} left`
              : 'no etcd member';
        const branches = r.moved.length === 0 ? 'no branch' : `${r.moved.length} branch(es) moved to ${r.to}`;
        const message = `removed ${describe(next)} from the Dotmesh cluster: ${branches}; ${member}`;
        log.info(message, { node: next.nodeId, kubernetesNode: next.kubernetesNode, moved: r.moved, etcdMember: r.etcdMember });
        await this.#event(s.configMap, 'Normal', 'NodeRemoved', message);
      } catch (e) {
        const error = String((e as Error)?.message ?? e);
        await this.#report(
          s.configMap,
          next,
          'NodeRemovalFailed',
          `could not remove ${describe(next)} from the Dotmesh cluster: ${error}`,
        );
      }
    }
    const again =
      plan.refused.length + plan.waitingForLease.length + later.length > 0 || (next !== undefined && removed.length === 0);
    return { hold, again, removed };
  }

  /**
   * A node gone from Kubernetes (its Node deleted) in `local` mode took its pool with its
   * machine (the controller runs departures in that mode alone): it never comes back, so the
   * planned restart its server announced when it stopped cleanly (a drain) is ended, and
   * failover moves its branches at its next sweep instead of when the grace (120 s) ends. A
   * failure is logged and changes nothing else: the removal then waits for the grace.
   */
  async #endPlannedRestart(client: DotmeshClient, d: Departure): Promise<void> {
    try {
      const r = await client.call('EndPlannedRestart', { Node: d.nodeId });
      if (r.Ended)
        this.#o.log.info('ended the planned restart of a node gone from Kubernetes', { node: d.nodeId, address: d.address });
    } catch (e) {
      this.#o.log.warn('could not end the planned restart of a node gone from Kubernetes; its branches wait for its grace', {
        node: d.nodeId,
        error: String((e as Error)?.message ?? e),
      });
    }
  }

  async #report(cm: V1ConfigMap | undefined, d: Departure, reason: string, message: string): Promise<void> {
    if (this.#reported.get(d.nodeId) === message) return;
    this.#reported.set(d.nodeId, message);
    this.#o.log.warn(message, { node: d.nodeId, kubernetesNode: d.kubernetesNode, reason });
    await this.#event(cm, 'Warning', reason, message);
  }

  async #event(cm: V1ConfigMap | undefined, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    await eventOn(this.#o, 'ConfigMap', { ...cm?.metadata, name: CONFIGMAP_NAME }, type, reason, message).catch((e) =>
      this.#o.log.warn('could not record an Event', { error: String(e) }),
    );
  }
}

function nodeOf(p: V1Pod): string {
  return p.metadata?.labels?.[NODE_LABEL] ?? p.spec?.nodeName ?? '';
}

function describe(d: Departure): string {
  return d.kubernetesNode
    ? `node ${d.nodeId} (Kubernetes node ${d.kubernetesNode}, no longer selected)`
    : `node ${d.nodeId} (at ${d.address}, gone from Kubernetes)`;
}
