import { parseStrandedReport, type StrandedReport } from '@dotmesh/rpc/etcd-stranded';
import { ApiException, type CoreV1Api, type V1ConfigMap, type V1Pod } from '@kubernetes/client-node';
import { newRecoveryId, planEtcdRecovery, type RecordedRecovery } from './etcd-recovery.ts';
import { eventOn, warnOn } from './events.ts';
import type { Logger } from './logger.ts';
import { isServing } from './plan.ts';
import { RECOVERY_CONFIGMAP } from './server-pod.ts';

/**
 * The etcd recovery's one record, the ConfigMap RECOVERY_CONFIGMAP (server-pod.ts), mounted
 * (optional) by every pvcPerNode server pod at RECOVERY_MOUNT: `existing-pool-only: "true"` while the operator gathers the stranded members'
 * reports (pods made then never start a new cluster on an empty volume), then `id` and `from`
 * (the Dotmesh node whose member restarts the cluster) once decided. A replace with the
 * version read: of two operators, one records a decision; the other's write is refused (409).
 */
export { RECOVERY_CONFIGMAP };

type Api = { readonly core: CoreV1Api; readonly namespace: string; readonly instance: string; readonly log: Logger };

/** The stranded members' reports in the server pods' termination messages (current or last run). */
export function strandedReports(pods: readonly V1Pod[]): StrandedReport[] {
  const out: StrandedReport[] = [];
  for (const pod of pods) {
    for (const c of pod.status?.containerStatuses ?? []) {
      if (c.name !== 'dotmesh-server') continue;
      const report = parseStrandedReport(c.state?.terminated?.message) ?? parseStrandedReport(c.lastState?.terminated?.message);
      if (report) out.push(report);
    }
  }
  return out;
}

/** The decision a recovery ConfigMap holds (undefined: none yet). */
export function recordedRecovery(cm: V1ConfigMap | undefined): RecordedRecovery | undefined {
  const id = cm?.data?.id;
  const from = cm?.data?.from;
  return id && from ? { id, from } : undefined;
}

/**
 * One step of the etcd recovery (pvcPerNode only), before the reconcile plan; returns whether a
 * recovery is under way (its ConfigMap exists: the plan then makes a pod for every node with a
 * pool, without waiting for a join Secret, and join Secrets for the pods that serve not).
 * - no record: when no server serves and some server reported its member stranded, the record
 *   is made (gathering);
 * - gathering: when a server serves (the members reached each other after all), the record goes;
 *   else the decision (etcd-recovery.ts): recorded, then the server pods that do not serve are
 *   deleted so that they start again with it (a Normal Event `EtcdRecovery`); blocked: a
 *   Warning Event `EtcdRecoveryBlocked` (once per reason);
 * - decided: followed; the record goes once `servers` server pods serve.
 */
export async function etcdRecoveryStep(
  o: Api,
  input: {
    readonly pods: readonly V1Pod[];
    readonly record: V1ConfigMap | undefined;
    /** The ConfigMap `configuration` (Events go there). */
    readonly configuration: V1ConfigMap | undefined;
    /** Server pods expected (selected nodes with a pool). */
    readonly servers: number;
    readonly reported: Set<string>;
  },
): Promise<boolean> {
  const serving = input.pods.filter(isServing);
  const reports = strandedReports(input.pods);
  const record = input.record;
  if (!record) {
    if (serving.length > 0 || reports.length === 0) return false;
    o.log.warn('no server serves and a server reported its etcd member stranded: gathering the members’ reports', {
      reported: reports.map((r) => r.nodeId),
    });
    await o.core
      .createNamespacedConfigMap({
        namespace: o.namespace,
        body: { metadata: { name: RECOVERY_CONFIGMAP, namespace: o.namespace }, data: { 'existing-pool-only': 'true' } },
      })
      .catch((e: unknown) => {
        if (!(e instanceof ApiException && e.code === 409)) throw e;
      });
    return true;
  }
  const recorded = recordedRecovery(record);
  if (recorded) {
    if (serving.length >= input.servers && input.pods.every(isServing)) {
      await deleteRecord(o, record);
      o.log.info('etcd recovery done: every server serves', { recovery: recorded.id, from: recorded.from });
    }
    return true;
  }
  const plan = planEtcdRecovery({ reports, anyServerReady: serving.length > 0, recorded, pools: input.servers });
  if (plan.kind === 'none') {
    if (serving.length > 0) {
      await deleteRecord(o, record);
      return false;
    }
    if (!input.reported.has(plan.why)) {
      input.reported.add(plan.why);
      o.log.info(plan.why);
    }
    return true;
  }
  if (plan.kind === 'blocked') {
    if (!input.reported.has(plan.why)) {
      input.reported.add(plan.why);
      o.log.error(plan.why);
      if (input.configuration?.metadata) {
        await warnOn(o, 'ConfigMap', input.configuration.metadata, 'EtcdRecoveryBlocked', plan.why).catch(() => {});
      }
    }
    return true;
  }
  const id = newRecoveryId(Date.now());
  try {
    await o.core.replaceNamespacedConfigMap({
      name: RECOVERY_CONFIGMAP,
      namespace: o.namespace,
      body: { ...record, data: { ...(record.data ?? {}), id, from: plan.from } },
    });
  } catch (e) {
    if (e instanceof ApiException && e.code === 409) return true; // changed meanwhile: decided by the next step
    throw e;
  }
  const message = `etcd recovery ${id}: no etcd member reaches another (every node replaced at once); node ${plan.from}'s member restarts the cluster from its data, the others join it again as new members`;
  o.log.warn(message, { reports });
  if (input.configuration?.metadata) {
    await eventOn(o, 'ConfigMap', input.configuration.metadata, 'Normal', 'EtcdRecovery', message).catch(() => {});
  }
  // Pods read the record when they start: those that do not serve start again now.
  for (const pod of input.pods.filter((p) => !isServing(p) && !p.metadata?.deletionTimestamp)) {
    await o.core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: o.namespace }).catch((e: unknown) => {
      if (!(e instanceof ApiException && e.code === 404)) throw e;
    });
  }
  return true;
}

async function deleteRecord(o: Api, record: V1ConfigMap): Promise<void> {
  await o.core
    .deleteNamespacedConfigMap({
      name: RECOVERY_CONFIGMAP,
      namespace: o.namespace,
      body: { preconditions: { resourceVersion: record.metadata?.resourceVersion } },
    })
    .catch((e: unknown) => {
      if (!(e instanceof ApiException && (e.code === 404 || e.code === 409))) throw e;
    });
}
