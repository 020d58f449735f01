import type { V1Pod } from '@kubernetes/client-node';
import type { OperatorConfig } from './config.ts';
import { matchesSelector } from './label-selector.ts';
import { NODE_LABEL, type ServerPodContext, SPEC_HASH_ANNOTATION, serverPod } from './server-pod.ts';

/**
 * One reconcile step, decided from a snapshot (pure; controller.ts applies it):
 * - a selected node with no server pod gets one (in pvcPerNode mode: unless it is a cordoned node
 *   being replaced, pool-claims.ts);
 * - a pod on a node that is gone is deleted; on a node no longer selected, too, unless the
 *   node's dots are in use there (`dotsInUse`: the controller asks that server, NodeUses): then
 *   it is held (kept, serving the uses' unmounts and its branches) until they end;
 * - a pod that ended (Failed/Succeeded) is deleted, to be recreated on the next step;
 * - a pod whose spec hash differs from the desired one (a new image, a new config) is replaced,
 *   but only while at least floor(0.75 × N) of the N selected nodes keep a serving pod (the
 *   original's upgrade rule): one step deletes at most as many as that allows, the rest wait.
 * A pod already being deleted counts as not serving and is left alone.
 * Cluster bootstrap: while no server pod exists, only the first selected node gets one (it
 * makes the cluster); a node without a pod then needs a join Secret first (`tokensNeeded`, made
 * by the controller through a serving node) and gets its pod once that exists.
 */
export interface NodeInfo {
  readonly name: string;
  /** The Node's uid: the server pod's owner (controller) reference. */
  readonly uid?: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface PodDeletion {
  readonly name: string;
  readonly reason: string;
  /** Its node exists and is no longer selected: the node leaves the Dotmesh cluster (node-removal.ts). */
  readonly deselected?: boolean;
}

export interface ReconcilePlan {
  readonly create: readonly V1Pod[];
  /** Nodes that need a join Secret before their pod can be made. */
  readonly tokensNeeded: readonly string[];
  readonly delete: readonly PodDeletion[];
  /** Pods due for replacement that wait for others to serve again. */
  readonly waiting: readonly string[];
  /** Pods of nodes no longer selected, kept while their node's dots are in use. */
  readonly held: readonly string[];
  readonly selectedNodes: readonly string[];
  /** The server pods' PodDisruptionBudget's minAvailable: floor(0.75 × selected nodes; pvcPerNode: those holding a pool). */
  readonly minServing: number;
}

/** The original's upgrade rule: floor(0.75 × N) of N selected nodes keep a serving pod. */
export function minServingOf(selectedNodes: number): number {
  return Math.floor(0.75 * selectedNodes);
}

/** Whether a pod serves: Running and Ready, not being deleted. */
export function isServing(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  if (pod.status?.phase !== 'Running') return false;
  return pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

export function planReconcile(o: {
  readonly config: OperatorConfig;
  readonly nodes: readonly NodeInfo[];
  /** The server pods that exist (those labelled with the server role). */
  readonly pods: readonly V1Pod[];
  /** Nodes whose join Secret exists. */
  readonly joinSecrets: ReadonlySet<string>;
  /** Nodes whose server has uses of its dots, or could not say (see deselectedServing). */
  readonly dotsInUse?: ReadonlySet<string>;
  /** `storageMode: pvcPerNode`: each node's pool PVC (pool-claims.ts); a node without one gets no pod yet. */
  readonly poolClaims?: ReadonlyMap<string, string>;
  /** `storageMode: pvcPerNode`: cordoned nodes being replaced (pool-claims.ts): a pod they lost is not made again. */
  readonly replacedNodes?: ReadonlySet<string>;
  /**
   * `storageMode: pvcPerNode`: an etcd recovery is under way (etcd-recovery-step.ts): every
   * node with a pool gets its pod without waiting for a join Secret (its server reports its
   * member, or takes its part in the recovery), and a node whose pod does not serve and has no
   * join Secret needs one (made once a node serves: the recovered one).
   */
  readonly recovering?: boolean;
  readonly context: Omit<ServerPodContext, 'config' | 'poolClaim'>;
}): ReconcilePlan {
  const uids = new Map(o.nodes.map((n) => [n.name, n.uid]));
  const selected = o.nodes
    .filter((n) => matchesSelector(o.config.nodeSelectorParsed, n.labels))
    .map((n) => n.name)
    .sort();
  const selectedSet = new Set(selected);
  const create: V1Pod[] = [];
  const del: PodDeletion[] = [];
  const outdated: V1Pod[] = [];
  const byNode = new Map<string, V1Pod[]>();
  for (const pod of o.pods) {
    const node = pod.metadata?.labels?.[NODE_LABEL] ?? pod.spec?.nodeName ?? '';
    byNode.set(node, [...(byNode.get(node) ?? []), pod]);
  }
  const held: string[] = [];
  for (const [node, pods] of byNode) {
    if (selectedSet.has(node)) continue;
    for (const pod of pods) {
      if (pod.metadata?.deletionTimestamp) continue;
      const ended = pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded';
      if (!ended && uids.has(node) && o.dotsInUse?.has(node)) held.push(pod.metadata!.name!);
      else if (uids.has(node)) del.push({ name: pod.metadata!.name!, reason: `node ${node} is not selected`, deselected: true });
      else del.push({ name: pod.metadata!.name!, reason: `node ${node} is gone` });
    }
  }
  const tokensNeeded: string[] = [];
  const anyPod = o.pods.length > 0;
  const pvcMode = o.config.storageMode === 'pvcPerNode';
  for (const node of selected) {
    const poolClaim = pvcMode ? o.poolClaims?.get(node) : undefined;
    if (pvcMode && poolClaim === undefined) continue; // its PVC is made first
    const desired = serverPod(node, { ...o.context, config: o.config, poolClaim }, o.joinSecrets.has(node), uids.get(node));
    const pods = (byNode.get(node) ?? []).filter((p) => !p.metadata?.deletionTimestamp);
    const [pod, ...extra] = pods.filter((p) => p.metadata?.name === desired.metadata!.name);
    for (const p of [...pods.filter((x) => x.metadata?.name !== desired.metadata!.name), ...extra]) {
      del.push({ name: p.metadata!.name!, reason: `not the server pod of node ${node}` });
    }
    if ((byNode.get(node) ?? []).some((p) => p.metadata?.deletionTimestamp && p.metadata.name === desired.metadata!.name)) {
      continue; // the old pod is going; recreate once it is gone
    }
    const recovering = pvcMode && o.recovering === true;
    // During an etcd recovery a pod that does not serve and has no join Secret gets one (made
    // through the recovered node once it serves; the pod is then made again with it).
    if (recovering && !o.joinSecrets.has(node) && !(pod && isServing(pod))) tokensNeeded.push(node);
    if (!pod) {
      if (o.replacedNodes?.has(node)) continue; // its pool is to move to the replacement
      if (o.joinSecrets.has(node) || recovering || (!anyPod && create.length === 0)) create.push(desired);
      else tokensNeeded.push(node);
    } else if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') {
      del.push({ name: pod.metadata!.name!, reason: `it ended (${pod.status.phase})` });
    } else if (pod.metadata?.annotations?.[SPEC_HASH_ANNOTATION] !== desired.metadata!.annotations![SPEC_HASH_ANNOTATION]) {
      outdated.push(pod);
    }
  }
  // The upgrade rule: replace outdated pods only while floor(0.75 × N) nodes keep serving. In
  // pvcPerNode mode N counts the nodes that hold a pool: a node waiting for one (a surge
  // replacement) serves nothing yet, and counting it would keep the node it replaces from
  // being drained (with one node: a budget of 1 that its only pod can never leave).
  const minServing = minServingOf(pvcMode ? selected.filter((n) => o.poolClaims?.has(n)).length : selected.length);
  const deleting = new Set(del.map((d) => d.name));
  let serving = o.pods.filter(
    (p) =>
      selectedSet.has(p.metadata?.labels?.[NODE_LABEL] ?? p.spec?.nodeName ?? '') &&
      isServing(p) &&
      !deleting.has(p.metadata!.name!),
  ).length;
  const waiting: string[] = [];
  for (const pod of outdated.sort((a, b) => Number(isServing(a)) - Number(isServing(b)))) {
    const name = pod.metadata!.name!;
    if (!isServing(pod)) del.push({ name, reason: 'its spec is outdated (not serving)' });
    else if (serving - 1 >= minServing) {
      serving--;
      del.push({ name, reason: 'its spec is outdated' });
    } else waiting.push(name);
  }
  return { create, tokensNeeded, delete: del, waiting, held, selectedNodes: selected, minServing };
}

/**
 * The server pods to ask about their node's dots before a step (`dotsInUse`): Running, not
 * being deleted, on a node that exists and is not selected. Their node addresses, by node.
 */
export function deselectedServing(o: {
  readonly config: OperatorConfig;
  readonly nodes: readonly NodeInfo[];
  readonly pods: readonly V1Pod[];
}): Map<string, string> {
  const deselected = new Set(o.nodes.filter((n) => !matchesSelector(o.config.nodeSelectorParsed, n.labels)).map((n) => n.name));
  const out = new Map<string, string>();
  for (const pod of o.pods) {
    const node = pod.metadata?.labels?.[NODE_LABEL] ?? pod.spec?.nodeName ?? '';
    const ip = pod.status?.hostIP;
    if (deselected.has(node) && ip && pod.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp) out.set(node, ip);
  }
  return out;
}
