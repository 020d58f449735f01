import {
  ApiException,
  type CoreV1Api,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  PolicyV1Api,
  StorageV1Api,
  type V1ConfigMap,
  type V1Node,
  type V1PersistentVolumeClaim,
  type V1Pod,
} from '@kubernetes/client-node';
import { adminClient } from './admin-client.ts';
import { CLUSTER_CA_CONFIGMAP, publishClusterCa } from './cluster-ca.ts';
import { CONFIGMAP_NAME, type ConfigProblem, type OperatorConfig, parseOperatorConfig } from './config.ts';
import { ensureServerDisruptionBudget } from './disruption-budget.ts';
import { etcdRecoveryStep, RECOVERY_CONFIGMAP } from './etcd-recovery-step.ts';
import { warnOn } from './events.ts';
import {
  deleteJoinSecrets,
  findJoinIssuer,
  joinSecretNode,
  makeJoinSecrets,
  orphanedJoinSecrets,
  renewJoinSecrets,
  staleJoinSecrets,
} from './join-secrets.ts';
import type { Logger } from './logger.ts';
import { NodeDepartures } from './node-removal.ts';
import { deselectedServing, isServing, type NodeInfo, planReconcile } from './plan.ts';
import { POOL_PVC_ROLE } from './pool-claims.ts';
import { reconcilePoolVolumes } from './pool-volumes.ts';
import { JOIN_SECRET_LABEL, NODE_LABEL, ROLE_LABEL, SERVER_ROLE } from './server-pod.ts';

/**
 * The operator's loop: watches the nodes, the server pods, the ConfigMaps and the pool PVCs of
 * its namespace (informers: a list, then a watch, restarted on errors), and after any change (and every
 * `resyncMs`) takes one reconcile step (plan.ts) and applies it; the server pods'
 * PodDisruptionBudget follows the selected nodes (disruption-budget.ts), the ConfigMap
 * `dotmesh-cluster-ca` is written once a server serves (cluster-ca.ts), and nodes that left
 * (deselected and drained, or deleted) are removed from the Dotmesh cluster (node-removal.ts):
 * a deselected node's server pod is deleted only once its node is removed. ConfigMap problems are
 * reported once per version of the ConfigMap, as a warning Event on it and a log line; an
 * invalid ConfigMap leaves the last good config in force.
 */
export interface ControllerOptions {
  readonly kubeConfig: KubeConfig;
  readonly core: CoreV1Api;
  readonly namespace: string;
  readonly serverImage: string;
  readonly log: Logger;
  /** This operator's pod name, as the Events' reporting instance. */
  readonly instance: string;
  readonly resyncMs?: number;
  /** Called after every reconcile step, and for each ConfigMap problem reported (metrics). */
  readonly onStep?: (step: StepReport) => void;
  readonly onProblem?: (p: ConfigProblem) => void;
}

export interface StepReport {
  readonly selectedNodes: number;
  readonly created: readonly string[];
  readonly deleted: readonly string[];
  readonly waiting: readonly string[];
  /** Dotmesh node ids removed from the cluster (their Kubernetes node left). */
  readonly removedNodes: readonly string[];
  readonly configError: boolean;
}

export interface RunningController {
  stop(): Promise<void>;
}

const RETRY_MS = 2_000;
const NO_DEPARTURES = { hold: new Set<string>(), again: false, removed: [] as string[] };
/** How often a held server pod's node is asked again whether its dots are still in use. */
const HELD_RECHECK_MS = 5_000;

function watched<T extends KubernetesObject>(
  o: ControllerOptions,
  what: string,
  informer: Informer<T> & ObjectCache<T>,
  changed: () => void,
  stopped: () => boolean,
): Informer<T> & ObjectCache<T> {
  for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, changed);
  informer.on('error', (err: unknown) => {
    if (stopped()) return;
    o.log.warn('watch failed; restarting it', { what, error: String((err as Error)?.message ?? err) });
    setTimeout(() => {
      if (!stopped()) informer.start().catch(() => {});
    }, RETRY_MS).unref();
  });
  return informer;
}

export async function startController(o: ControllerOptions): Promise<RunningController> {
  const { core, namespace, log } = o;
  const policy = o.kubeConfig.makeApiClient(PolicyV1Api);
  const storage = o.kubeConfig.makeApiClient(StorageV1Api);
  let stopping = false;
  let synced = false;
  const isStopped = () => stopping;
  let queued = false;
  let running: Promise<void> | undefined;
  const changed = () => schedule();
  const nodes = watched(
    o,
    'nodes',
    makeInformer<V1Node>(o.kubeConfig, '/api/v1/nodes', () => core.listNode()),
    changed,
    isStopped,
  );
  const selector = `${ROLE_LABEL}=${SERVER_ROLE}`;
  const pods = watched(
    o,
    'server pods',
    makeInformer<V1Pod>(
      o.kubeConfig,
      `/api/v1/namespaces/${namespace}/pods`,
      () => core.listNamespacedPod({ namespace, labelSelector: selector }),
      selector,
    ),
    changed,
    isStopped,
  );
  const configMaps = watched(
    o,
    'configmaps',
    makeInformer<V1ConfigMap>(o.kubeConfig, `/api/v1/namespaces/${namespace}/configmaps`, () =>
      core.listNamespacedConfigMap({ namespace }),
    ),
    changed,
    isStopped,
  );

  // pvcPerNode: a pool PVC made, released or changed (bound, grown; one that no node can use)
  // is acted on at once, not at the next resync. Steps read the PVCs themselves: no step waits
  // for this watch.
  const poolSelector = `${ROLE_LABEL}=${POOL_PVC_ROLE}`;
  const poolClaims = watched(
    o,
    'pool PVCs',
    makeInformer<V1PersistentVolumeClaim>(
      o.kubeConfig,
      `/api/v1/namespaces/${namespace}/persistentvolumeclaims`,
      () => core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: poolSelector }),
      poolSelector,
    ),
    changed,
    isStopped,
  );

  let lastGood: OperatorConfig | undefined;
  /** Reconcile steps taken (the first is always logged, as "reconciled" with step 0). */
  let steps = 0;
  let reportedVersion: string | undefined;
  /** Whether this operator has compared the ConfigMap dotmesh-cluster-ca with the cluster's CA. */
  let caChecked = false;
  const leaving = new NodeDepartures({ core, namespace, instance: o.instance, log });

  async function report(cm: V1ConfigMap | undefined, problems: readonly ConfigProblem[]): Promise<void> {
    const version = cm?.metadata?.resourceVersion ?? 'none';
    if (version === reportedVersion) return;
    reportedVersion = version;
    for (const p of problems) {
      o.onProblem?.(p);
      const fields = { key: p.key, kind: p.kind, configMap: `${namespace}/${CONFIGMAP_NAME}` };
      if (p.kind === 'invalid') log.error(p.message, fields);
      else log.warn(p.message, fields);
      if (cm) await warningEvent(cm, p).catch((e) => log.warn('could not record an Event', { error: String(e) }));
    }
  }

  async function warningEvent(cm: V1ConfigMap, p: ConfigProblem): Promise<void> {
    const reason = {
      invalid: 'InvalidConfiguration',
      obsolete: 'ObsoleteKey',
      unknown: 'UnknownKey',
      unsupported: 'UnsupportedKey',
    }[p.kind];
    await warnOn(o, 'ConfigMap', { ...cm.metadata, name: CONFIGMAP_NAME }, reason, p.message);
  }

  /** What the etcd recovery step has logged or reported already (once each). */
  const reportedRecovery = new Set<string>();
  /** Warnings on pool PVCs already recorded (by reason, PVC and version of it). */
  const reportedPoolWarnings = new Set<string>();
  async function poolVolumeWarning(pvc: V1PersistentVolumeClaim, reason: string, message: string): Promise<void> {
    const version = `${reason}:${pvc.metadata?.name}@${pvc.metadata?.resourceVersion}`;
    if (reportedPoolWarnings.has(version)) return;
    reportedPoolWarnings.add(version);
    log.warn(message, { pvc: pvc.metadata?.name, reason });
    await warnOn(o, 'PersistentVolumeClaim', pvc.metadata!, reason, message);
  }

  async function step(): Promise<void> {
    const cm = configMaps.get(CONFIGMAP_NAME, namespace);
    const parsed = parseOperatorConfig(cm?.data ?? undefined);
    await report(cm, parsed.problems);
    if (parsed.config) lastGood = parsed.config;
    const config = lastGood;
    if (!config) {
      log.error('no valid configuration yet: not changing any server pod', { configMap: `${namespace}/${CONFIGMAP_NAME}` });
      o.onStep?.({ selectedNodes: 0, created: [], deleted: [], waiting: [], removedNodes: [], configError: true });
      return;
    }
    const joinSecrets = await core.listNamespacedSecret({ namespace, labelSelector: JOIN_SECRET_LABEL });
    const serverPods = pods.list(namespace);
    const nodeInfos: NodeInfo[] = nodes
      .list()
      .map((n) => ({ name: n.metadata!.name!, uid: n.metadata?.uid, labels: n.metadata?.labels ?? {} }));
    const dotsInUse = await nodesWithUses(o, deselectedServing({ config, nodes: nodeInfos, pods: serverPods }));
    const pools =
      config.storageMode === 'pvcPerNode'
        ? await reconcilePoolVolumes({ core, storage, namespace, config, nodes: nodes.list(), log, warn: poolVolumeWarning })
        : undefined;
    // pvcPerNode: every node replaced at once leaves no etcd member reaching another; the
    // recovery (etcd-recovery-step.ts) is decided here, by the leader operator only.
    const recovering = pools
      ? await etcdRecoveryStep(
          { core, namespace, instance: o.instance, log },
          {
            pods: serverPods,
            record: configMaps.get(RECOVERY_CONFIGMAP, namespace),
            configuration: cm,
            servers: [...pools.assigned.keys()].filter((n) => nodeInfos.some((i) => i.name === n)).length,
            reported: reportedRecovery,
          },
        )
      : false;
    const plan = planReconcile({
      config,
      nodes: nodeInfos,
      pods: serverPods,
      joinSecrets: new Set(joinSecrets.items.map((s) => s.metadata?.labels?.[JOIN_SECRET_LABEL] ?? '')),
      dotsInUse,
      recovering,
      ...(pools ? { poolClaims: pools.assigned, replacedNodes: pools.replaced } : {}),
      context: { namespace, image: o.serverImage },
    });
    if (plan.held.length > 0) {
      log.info('keeping the server pods of nodes no longer selected while their dots are in use', { pods: plan.held });
      // Nothing else changes when the uses end (the kubelet talks to the server): look again soon.
      setTimeout(schedule, HELD_RECHECK_MS).unref();
    }
    const through = serverPods.find(isServing);
    // Join Secrets: made for nodes that need one, renewed (expired tokens) before pods are made
    // with them, deleted with their Node; through a serving node that holds the CA key.
    const servingAddresses = serverPods.filter(isServing).flatMap((p) => (p.status?.hostIP ? [p.status.hostIP] : []));
    const creating = plan.create.map((p) => p.metadata?.labels?.[NODE_LABEL] ?? '');
    const stale = staleJoinSecrets(joinSecrets.items, creating, Date.now());
    const orphaned = orphanedJoinSecrets(joinSecrets.items, new Set(nodeInfos.map((n) => n.name)));
    const needIssuer = plan.tokensNeeded.length + stale.length + orphaned.length > 0 && servingAddresses.length > 0;
    const found = needIssuer ? await findJoinIssuer(o, servingAddresses) : undefined;
    const issuer = found?.address;
    if (plan.tokensNeeded.length > 0 && found && !found.holdsCaKey) {
      log.warn(
        'no serving node holds the cluster CA key: join tokens made through another, which refuses joins until it holds it',
        {
          nodes: plan.tokensNeeded,
          through: found.address,
        },
      );
    }
    if (stale.length > 0 && issuer !== undefined) {
      await renewJoinSecrets(o, issuer, stale).catch((e) =>
        log.warn('could not renew expired join Secrets; their pods are made with them', {
          nodes: stale.map(joinSecretNode),
          error: String((e as Error)?.message ?? e),
        }),
      );
    }
    if (orphaned.length > 0) {
      await deleteJoinSecrets(o, issuer, orphaned).catch((e) =>
        log.warn('could not delete the join Secrets of gone nodes; retrying at the next step', {
          error: String((e as Error)?.message ?? e),
        }),
      );
    }
    if (plan.tokensNeeded.length > 0 && issuer !== undefined) {
      // Their pods are made by the next step; a failure here holds back only those nodes.
      await makeJoinSecrets(o, issuer, plan.tokensNeeded).then(
        () => {
          queued = true;
        },
        (e) => {
          const error = String((e as Error)?.message ?? e);
          log.warn('could not make join Secrets; retrying', { nodes: plan.tokensNeeded, error });
          setTimeout(schedule, RETRY_MS).unref();
        },
      );
    }
    if (through?.status?.hostIP && (!caChecked || !configMaps.get(CLUSTER_CA_CONFIGMAP, namespace))) {
      // A failure is retried by the next step (a change, or the resync).
      await publishClusterCa(o, through.status.hostIP, configMaps.get(CLUSTER_CA_CONFIGMAP, namespace)).then(
        () => {
          caChecked = true;
        },
        (e) =>
          log.warn('could not publish the cluster CA; retrying at the next step', { error: String((e as Error)?.message ?? e) }),
      );
    }
    await ensureServerDisruptionBudget({ policy, namespace, log }, plan.minServing).catch((e) =>
      log.warn('could not set the server pods’ disruption budget; retrying at the next step', {
        error: String((e as Error)?.message ?? e),
      }),
    );
    // Nodes that left: removed from the Dotmesh cluster (a deselected node's before its pod goes).
    // Not with pvcPerNode: a pool (and its Dotmesh node) outlives its Kubernetes node there and
    // comes back on another one.
    const deselected = new Set(plan.delete.filter((d) => d.deselected).map((d) => d.name));
    const departures = await (config.storageMode === 'pvcPerNode'
      ? Promise.resolve(NO_DEPARTURES)
      : leaving
          .step({
            nodes: nodes.list(),
            selected: new Set(plan.selectedNodes),
            pods: serverPods,
            deselectedDeletions: deselected,
            configMap: cm,
          })
          .catch((e) => {
            log.warn('could not look for nodes that left; keeping the server pods of deselected nodes', {
              error: String((e as Error)?.message ?? e),
            });
            return { hold: deselected, again: true, removed: [] };
          }));
    if (departures.again) setTimeout(schedule, HELD_RECHECK_MS).unref();
    const created: string[] = [];
    const deleted: string[] = [];
    for (const d of plan.delete) {
      if (departures.hold.has(d.name)) continue;
      log.info('deleting server pod', { pod: d.name, reason: d.reason });
      if (await ignoring(404, core.deleteNamespacedPod({ name: d.name, namespace }))) deleted.push(d.name);
    }
    for (const pod of plan.create) {
      log.info('creating server pod', { pod: pod.metadata!.name!, node: pod.metadata!.labels![NODE_LABEL]! });
      if (await ignoring(409, core.createNamespacedPod({ namespace, body: pod }))) created.push(pod.metadata!.name!);
    }
    if (plan.waiting.length > 0) log.info('waiting to replace outdated server pods', { pods: plan.waiting });
    if (steps === 0 || created.length + deleted.length > 0) {
      log.info('reconciled', { step: steps, selectedNodes: plan.selectedNodes, created, deleted, waiting: plan.waiting });
    }
    steps++;
    o.onStep?.({
      selectedNodes: plan.selectedNodes.length,
      created,
      deleted,
      waiting: plan.waiting,
      removedNodes: departures.removed,
      configError: parsed.config === undefined,
    });
  }

  function schedule(): void {
    // Before every informer has listed, a snapshot would lack nodes or pods (and the step would
    // delete or create what exists): wait for all three.
    if (stopping || !synced) return;
    if (running) {
      queued = true;
      return;
    }
    running = step()
      .catch((e) => {
        log.error('reconcile step failed; retrying', { error: String((e as Error)?.message ?? e) });
        setTimeout(schedule, RETRY_MS).unref();
      })
      .finally(() => {
        running = undefined;
        if (queued) {
          queued = false;
          setTimeout(schedule, 200).unref();
        }
      });
  }

  await Promise.all([nodes.start(), pods.start(), configMaps.start()]);
  synced = true;
  poolClaims
    .start()
    .catch((e: unknown) => log.warn('could not watch the pool PVCs; the resync finds them', { error: String(e) }));
  log.info('watching nodes, server pods and the ConfigMap', { namespace, serverImage: o.serverImage });
  schedule();
  const resync = setInterval(schedule, o.resyncMs ?? 30_000);
  return {
    async stop() {
      stopping = true;
      clearInterval(resync);
      await Promise.all([nodes.stop(), pods.stop(), configMaps.stop(), poolClaims.stop()]).catch(() => {});
      await running;
    },
  };
}

/**
 * The nodes (of `servers`: node → its server's address) whose dots are in use: their server
 * reports uses (NodeUses), or does not answer (it may still have them: keep it).
 */
async function nodesWithUses(o: ControllerOptions, servers: ReadonlyMap<string, string>): Promise<Set<string>> {
  const inUse = new Set<string>();
  for (const [node, address] of servers) {
    const uses = await adminClient(o, address)
      .then((c) => c.call('NodeUses', {}))
      .then(
        (r) => r.Uses.length,
        (e: unknown) => {
          o.log.warn('could not ask a server of a node no longer selected for its uses; keeping it', {
            node,
            error: String((e as Error)?.message ?? e),
          });
          return 1;
        },
      );
    if (uses > 0) inUse.add(node);
  }
  return inUse;
}

async function ignoring<T>(status: number, p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof ApiException && e.code === status) return undefined;
    throw e;
  }
}
