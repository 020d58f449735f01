import type { V1NodeSelector, V1NodeSelectorRequirement } from '@kubernetes/client-node';

/**
 * `storageMode: pvcPerNode`: which pool PVC each node's server gets (pure; pool-volumes.ts
 * reads the cluster and applies the decision). A pool PVC (label `dotmesh.io/role=dotmesh-pvc`)
 * is tied to its node by the annotation `dotmesh.io/node` (the key of the original's node
 * label). The rules:
 * - a PVC stays with its node while that Node object exists, selected or not: it is released
 *   (its annotation cleared) only when the Node is deleted, so a cordoned, drained, relabelled
 *   or rebooting node keeps its pool;
 * - a selected node without a PVC first adopts an unheld one it can reach: one whose PV's node
 *   affinity its labels satisfy (a cloud disk's zone; a PVC with no PV yet fits any node), the
 *   oldest first; only when none fits is a new PVC made for it — but not while it may be the
 *   replacement of a node being recycled (surge order: the new node comes first, the old one is
 *   drained and deleted after): it waits while a cordoned node holds a PVC it could use, and
 *   while it is younger than `newNodeGraceMs` and the cluster has pool PVCs at all (a first
 *   install does not wait);
 * - a cordoned node holding a PVC that such a waiting node could use is being replaced
 *   (`replaced`; with several waiting nodes in a zone, each counts on a cordoned node of its own
 *   there, so that every node of a zone replaced at once is): its server pod, once the drain evicted it, is not made again there, so that
 *   the pool is let go of (unmounted, its disk detached) and can move as soon as the Node is
 *   deleted;
 * - an unheld PVC that no existing selected node can reach is left alone and reported
 *   (`unreachable`: the caller records an Event on it), for a node of its zone to adopt later.
 * A PVC being deleted is never adopted.
 */
export const POOL_PVC_ROLE = 'dotmesh-pvc';
export const POOL_NODE_ANNOTATION = 'dotmesh.io/node';

export interface PoolNode {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Whether the ConfigMap's nodeSelector selects it (only selected nodes get a pool). */
  readonly selected: boolean;
  /** Cordoned (`spec.unschedulable`): being drained, perhaps to be replaced. */
  readonly unschedulable?: boolean;
  /** The Node's creationTimestamp (RFC 3339). */
  readonly created?: string;
}

/** How long a new node waits for a pool of its zone to be released before one is made for it. */
export const NEW_NODE_GRACE_MS = 120_000;

export interface PoolClaim {
  readonly name: string;
  /** The node its annotation names ('' or absent: unheld). */
  readonly heldBy?: string;
  readonly deleting?: boolean;
  /** RFC 3339; the oldest unheld PVC is adopted first. */
  readonly created?: string;
  /** Its bound PV's required node affinity (absent: no PV yet, any node fits). */
  readonly nodeAffinity?: V1NodeSelector;
}

export interface PoolClaimPlan {
  /** The PVC of every node that has one after this step (a node not selected keeps its own), by node. */
  readonly assigned: ReadonlyMap<string, string>;
  /** PVCs whose holder's Node is gone: clear the annotation. */
  readonly release: readonly string[];
  /** Unheld PVCs given to a node: set the annotation. */
  readonly adopt: readonly { readonly pvc: string; readonly node: string }[];
  /** Selected nodes that no unheld PVC fits: make one for each. */
  readonly create: readonly string[];
  /** Selected nodes without a PVC that may be replacements: they wait (see above). */
  readonly waiting: readonly { readonly node: string; readonly reason: string }[];
  /** Cordoned nodes holding a PVC a waiting node could use: being replaced (no new server pod there). */
  readonly replaced: readonly string[];
  /** Unheld PVCs that no existing selected node can reach, with where they can be used. */
  readonly unreachable: readonly { readonly pvc: string; readonly where: string }[];
}

function requirementHolds(r: V1NodeSelectorRequirement, labels: Readonly<Record<string, string>>): boolean {
  const value = labels[r.key];
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
    case 'Gt':
    case 'Lt': {
      const n = Number(value);
      const bound = Number(values[0]);
      if (value === undefined || !Number.isInteger(n) || !Number.isInteger(bound)) return false;
      return r.operator === 'Gt' ? n > bound : n < bound;
    }
    default:
      return false;
  }
}

/**
 * Whether a node with `labels` satisfies a PV's node affinity, as the scheduler reads it: any
 * term whose expressions all hold (field selectors, on the node's name, are not used by disks'
 * topology and make a term fail).
 */
export function affinityAllows(affinity: V1NodeSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!affinity || affinity.nodeSelectorTerms.length === 0) return true;
  return affinity.nodeSelectorTerms.some(
    (t) => (t.matchFields ?? []).length === 0 && (t.matchExpressions ?? []).every((r) => requirementHolds(r, labels)),
  );
}

/** The affinity in words, for Events: `topology.../zone in (zone-b)`. */
export function describeAffinity(affinity: V1NodeSelector | undefined): string {
  if (!affinity) return 'any node';
  return affinity.nodeSelectorTerms
    .map((t) =>
      (t.matchExpressions ?? []).map((r) => `${r.key} ${r.operator.toLowerCase()} (${(r.values ?? []).join(',')})`).join(' and '),
    )
    .join(' or ');
}

function byAge(a: PoolClaim, b: PoolClaim): number {
  return (a.created ?? '').localeCompare(b.created ?? '') || a.name.localeCompare(b.name);
}

export function planPoolClaims(o: {
  readonly nodes: readonly PoolNode[];
  readonly pvcs: readonly PoolClaim[];
  /** Now, in ms since the epoch (a node's age), and the new node grace (default NEW_NODE_GRACE_MS). */
  readonly now: number;
  readonly newNodeGraceMs?: number;
}): PoolClaimPlan {
  const existing = new Set(o.nodes.map((n) => n.name));
  const cordoned = new Set(o.nodes.filter((n) => n.unschedulable).map((n) => n.name));
  const grace = o.newNodeGraceMs ?? NEW_NODE_GRACE_MS;
  const waiting: { node: string; reason: string }[] = [];
  const replaced = new Set<string>();
  /** PVCs of cordoned nodes a waiting node already counts on. */
  const awaited = new Set<string>();
  const assigned = new Map<string, string>();
  const release: string[] = [];
  const free: PoolClaim[] = [];
  for (const pvc of [...o.pvcs].sort(byAge)) {
    const holder = pvc.heldBy ?? '';
    if (holder !== '' && existing.has(holder)) {
      // One PVC per node: a second one held by the same node (not made by this operator) waits.
      if (!assigned.has(holder)) assigned.set(holder, pvc.name);
      continue;
    }
    if (holder !== '') release.push(pvc.name);
    if (!pvc.deleting) free.push(pvc);
  }
  const adopt: { pvc: string; node: string }[] = [];
  const create: string[] = [];
  for (const node of [...o.nodes].filter((n) => n.selected).sort((a, b) => a.name.localeCompare(b.name))) {
    if (assigned.has(node.name)) continue;
    const i = free.findIndex((p) => affinityAllows(p.nodeAffinity, node.labels));
    if (i < 0) {
      // Each waiting node counts on a cordoned node of its zone of its own while there are
      // several (every node of a zone replaced at once: each is being replaced).
      const candidates = [...o.pvcs]
        .sort(byAge)
        .filter((p) => cordoned.has(p.heldBy ?? '') && p.heldBy !== node.name && affinityAllows(p.nodeAffinity, node.labels));
      const draining = candidates.find((p) => !awaited.has(p.name)) ?? candidates[0];
      if (draining) awaited.add(draining.name);
      const age = node.created ? o.now - Date.parse(node.created) : Number.POSITIVE_INFINITY;
      if (draining) {
        replaced.add(draining.heldBy!);
        waiting.push({ node: node.name, reason: `cordoned node ${draining.heldBy} holds pool PVC ${draining.name} of its zone` });
      } else if (age < grace && o.pvcs.length > 0) {
        waiting.push({ node: node.name, reason: `a new node waits ${grace / 1000} s for a pool PVC of its zone to be released` });
      } else create.push(node.name);
      continue;
    }
    const [pvc] = free.splice(i, 1);
    assigned.set(node.name, pvc!.name);
    adopt.push({ pvc: pvc!.name, node: node.name });
  }
  const selected = o.nodes.filter((n) => n.selected);
  const unreachable = free
    .filter((p) => !selected.some((n) => affinityAllows(p.nodeAffinity, n.labels)))
    .map((p) => ({ pvc: p.name, where: describeAffinity(p.nodeAffinity) }));
  for (const node of create) assigned.delete(node);
  return { assigned, release, adopt, create, waiting, replaced: [...replaced].sort(), unreachable };
}
