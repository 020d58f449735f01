/**
 * Which Dotmesh nodes have left the Kubernetes cluster for good, and whether removing each from
 * the Dotmesh cluster (`removeNode` of `@dotmesh/rpc/remove-node`: its branches handed or given
 * to a live node, its managed etcd member removed) keeps the cluster's etcd quorate (pure;
 * node-removal.ts applies it). A Dotmesh node is known by its address: the advertise address of
 * a server pod is its Kubernetes node's address (status.hostIP), which is also the host of its
 * etcd member's peer URL, and the member's name is the Dotmesh node id.
 *
 * Two ways to leave:
 * - **Deselected and drained**: a server pod the reconcile plan deletes because its node, which
 *   still exists, is no longer selected (its dots are unused: plan.ts holds it otherwise). It is
 *   removed while its server still runs (`live`: its branches move with their uncommitted data,
 *   its member leaves while it still votes), and its pod is deleted only after that.
 * - **Gone**: an etcd member at an address that is no selected Node's address and no server
 *   pod's (the Node was deleted, or its pod went while the operator was not looking; a pod
 *   whose Node was deleted counts as none, though it lingers until it is collected), once the
 *   node's lease has expired (it is not among the live servers: a server merely restarting keeps
 *   its lease). Its branches are left to automatic failover: the removal waits until it masters
 *   none (a pinned branch waits for an admin).
 * A node that is selected and exists is never a departure, whatever its pod does.
 *
 * The quorum rule: a voting member is removed only if the voting members left would still be a
 * majority up (their node's server pod serving), counted among the members left: removing it
 * never turns a quorate etcd into one without quorum, and never removes the last voting member.
 * A refused removal is reported and tried again at later steps (a deselected node's pod is kept
 * meanwhile, so its member keeps voting).
 */
export interface MemberInfo {
  /** The Dotmesh node id (empty while the member has not started). */
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly learner: boolean;
}

export interface ServerPodInfo {
  readonly pod: string;
  readonly node: string;
  /** Its node's address (status.hostIP), absent before it is scheduled. */
  readonly address?: string;
  readonly serving: boolean;
  /**
   * Its Node was deleted: the pod lingers (Terminating, with its last status) until the pod
   * garbage collector takes it, up to a minute later, but it runs nowhere: it counts as no pod.
   */
  readonly nodeGone?: boolean;
}

export interface DepartureInput {
  /** The addresses of every existing Node the ConfigMap selects (InternalIPs, and where its server pod last ran). */
  readonly selectedAddresses: ReadonlySet<string>;
  /** Every server pod that exists (being deleted too). */
  readonly pods: readonly ServerPodInfo[];
  /** The pods the reconcile plan deletes because their existing node is no longer selected. */
  readonly deselectedDeletions: ReadonlySet<string>;
  /** The live Dotmesh nodes (AllDotsAndBranches.Servers). */
  readonly liveServers: readonly { readonly id: string; readonly addresses: readonly string[] }[];
  /** The managed etcd's members; undefined: the cluster's etcd is not Dotmesh's. */
  readonly members: readonly MemberInfo[] | undefined;
}

export interface Departure {
  /** The Dotmesh node id. */
  readonly nodeId: string;
  readonly address: string;
  /** The Kubernetes node, when known (a deselected one). */
  readonly kubernetesNode?: string;
  /** The server pod deleted once the removal is done (a deselected node's). */
  readonly pod?: string;
  /** Whether its server is live (its branches are moved; otherwise failover has to move them first). */
  readonly live: boolean;
}

export interface RefusedDeparture extends Departure {
  readonly why: string;
}

export interface DeparturePlan {
  /** Removals that keep quorum, in order (the controller does one per step). */
  readonly remove: readonly Departure[];
  /** Removals the quorum rule refuses now. */
  readonly refused: readonly RefusedDeparture[];
  /** Members gone from Kubernetes whose node still holds its lease: removed once it expires. */
  readonly waitingForLease: readonly Departure[];
}

/** The host of a URL (`https://10.0.0.1:42380` → `10.0.0.1`; IPv6 brackets dropped). */
export function urlHost(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return undefined;
  }
}

/** A member's address: the host of its (first parsable) peer URL. */
export function memberAddress(m: MemberInfo): string | undefined {
  for (const u of m.peerUrls) {
    const host = urlHost(u);
    if (host) return host;
  }
  return undefined;
}

/**
 * Whether removing `member` leaves a quorate etcd: learners do not vote (always removable); a
 * voting member goes only if the voting members left number at least one and a majority of them
 * are up.
 */
export function quorumAfterRemoval(
  members: readonly MemberInfo[],
  member: MemberInfo,
  up: (m: MemberInfo) => boolean,
): { ok: true } | { ok: false; why: string } {
  if (member.learner) return { ok: true };
  const left = members.filter((m) => !m.learner && m !== member);
  const upLeft = left.filter(up).length;
  const need = Math.floor(left.length / 2) + 1;
  if (left.length === 0) return { ok: false, why: 'it is the last voting member of the cluster’s etcd' };
  if (upLeft < need) {
    return {
      ok: false,
      why: `the etcd would keep ${left.length} voting member(s) of which ${upLeft} run(s), short of the ${need} a quorum needs`,
    };
  }
  return { ok: true };
}

/** The server pods that count: those whose Node still exists (nodeGone: it runs nowhere). */
export function presentPods(pods: readonly ServerPodInfo[]): ServerPodInfo[] {
  return pods.filter((p) => !p.nodeGone);
}

/** Where the present server pods are (their nodes' addresses). */
export function podAddressesOf(pods: readonly ServerPodInfo[]): Set<string> {
  return new Set(presentPods(pods).flatMap((p) => (p.address ? [p.address] : [])));
}

export function planDepartures(i: DepartureInput): DeparturePlan {
  const members = i.members ?? [];
  const pods = presentPods(i.pods);
  const servingAddresses = new Set(pods.filter((p) => p.serving && p.address).map((p) => p.address!));
  const podAddresses = podAddressesOf(pods);
  const up = (m: MemberInfo) => {
    const a = memberAddress(m);
    return a !== undefined && servingAddresses.has(a);
  };
  const liveAt = (address: string) => i.liveServers.find((s) => s.addresses.includes(address));
  const remove: Departure[] = [];
  const refused: RefusedDeparture[] = [];
  const waitingForLease: Departure[] = [];
  const decide = (d: Departure) => {
    const member = members.find((m) => m.name === d.nodeId || memberAddress(m) === d.address);
    const q = member ? quorumAfterRemoval(members, member, up) : ({ ok: true } as const);
    if (q.ok) remove.push(d);
    else refused.push({ ...d, why: q.why });
  };

  // Deselected and drained: removed while its server is live; its pod goes afterwards.
  const deselectedAddresses = new Set<string>();
  for (const p of pods) {
    if (!i.deselectedDeletions.has(p.pod) || !p.address) continue;
    deselectedAddresses.add(p.address);
    const live = liveAt(p.address);
    const member = members.find((m) => memberAddress(m) === p.address && m.name !== '');
    const nodeId = live?.id ?? member?.name;
    // Neither live nor a member: nothing of it to remove here (a gone one is found below).
    if (!nodeId) continue;
    decide({ nodeId, address: p.address, kubernetesNode: p.node, pod: p.pod, live: live !== undefined });
  }

  // Gone: a member at no selected Node's address and no server pod's.
  for (const m of members) {
    const address = memberAddress(m);
    if (m.name === '' || !address) continue;
    if (i.selectedAddresses.has(address) || podAddresses.has(address) || deselectedAddresses.has(address)) continue;
    const live = i.liveServers.some((s) => s.id === m.name);
    const d: Departure = { nodeId: m.name, address, live: false };
    if (live) waitingForLease.push(d);
    else decide(d);
  }
  return { remove, refused, waitingForLease };
}
