import { randomBytes } from 'node:crypto';
import {
  ApiException,
  type CoreV1Api,
  PatchStrategy,
  type StorageV1Api,
  setHeaderOptions,
  type V1Node,
  type V1PersistentVolumeClaim,
} from '@kubernetes/client-node';
import type { OperatorConfig } from './config.ts';
import { matchesSelector } from './label-selector.ts';
import type { Logger } from './logger.ts';
import { POOL_NODE_ANNOTATION, POOL_PVC_ROLE, type PoolClaim, planPoolClaims } from './pool-claims.ts';
import { growPoolVolumes } from './pool-growth.ts';
import { ROLE_LABEL } from './server-pod.ts';

/**
 * `storageMode: pvcPerNode`, applied: reads the pool PVCs of the operator's namespace and their
 * PVs, decides with pool-claims.ts and writes the decision (annotations set and cleared, new
 * PVCs made, a warning Event on each PVC no node can reach, held PVCs grown to a raised
 * pvSizePerNode: pool-growth.ts). Returns each node's PVC and the
 * cordoned nodes being replaced (pool-claims.ts's `replaced`). A new PVC
 * is bound when its node's server pod is scheduled (the StorageClass's WaitForFirstConsumer puts
 * the disk in the node's zone); its name is the original's `pvc-<16 hex>`.
 */
export interface PoolVolumesOptions {
  readonly core: CoreV1Api;
  readonly namespace: string;
  readonly config: OperatorConfig;
  readonly nodes: readonly V1Node[];
  readonly log: Logger;
  readonly storage: StorageV1Api;
  /** Records a warning Event `reason` on a pool PVC, once per PVC per version of it. */
  readonly warn: (pvc: V1PersistentVolumeClaim, reason: string, message: string) => Promise<void>;
}

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export function newPoolClaimName(): string {
  return `pvc-${randomBytes(8).toString('hex')}`;
}

export interface PoolVolumes {
  /** Each node's pool PVC, by node. */
  readonly assigned: ReadonlyMap<string, string>;
  /** Cordoned nodes whose pool a replacement waits for: no new server pod there. */
  readonly replaced: ReadonlySet<string>;
}

export async function reconcilePoolVolumes(o: PoolVolumesOptions): Promise<PoolVolumes> {
  const { core, namespace, config, log } = o;
  const listed = await core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector: `${ROLE_LABEL}=${POOL_PVC_ROLE}` });
  const pvcs = new Map(listed.items.map((p) => [p.metadata!.name!, p]));
  const claims: PoolClaim[] = [];
  for (const pvc of listed.items) {
    const volume = pvc.spec?.volumeName;
    const pv = volume ? await core.readPersistentVolume({ name: volume }).catch(notFound) : undefined;
    claims.push({
      name: pvc.metadata!.name!,
      heldBy: pvc.metadata?.annotations?.[POOL_NODE_ANNOTATION] ?? '',
      deleting: pvc.metadata?.deletionTimestamp !== undefined,
      created: pvc.metadata?.creationTimestamp ? new Date(pvc.metadata.creationTimestamp).toISOString() : '',
      ...(pv?.spec?.nodeAffinity?.required ? { nodeAffinity: pv.spec.nodeAffinity.required } : {}),
    });
  }
  const plan = planPoolClaims({
    nodes: o.nodes.map((n) => ({
      name: n.metadata!.name!,
      labels: n.metadata?.labels ?? {},
      selected: matchesSelector(config.nodeSelectorParsed, n.metadata?.labels ?? {}),
      unschedulable: n.spec?.unschedulable === true,
      ...(n.metadata?.creationTimestamp ? { created: new Date(n.metadata.creationTimestamp).toISOString() } : {}),
    })),
    pvcs: claims,
    now: Date.now(),
  });
  if (plan.waiting.length > 0) log.info('nodes without a pool PVC wait before one is made', { waiting: plan.waiting });
  const annotate = (name: string, node: string | null) =>
    core.patchNamespacedPersistentVolumeClaim(
      { name, namespace, body: { metadata: { annotations: { [POOL_NODE_ANNOTATION]: node } } } },
      MERGE_PATCH,
    );
  for (const name of plan.release) {
    log.info('releasing a pool PVC: the node holding it is gone', {
      pvc: name,
      node: pvcs.get(name)?.metadata?.annotations?.[POOL_NODE_ANNOTATION],
    });
    await annotate(name, null);
  }
  for (const { pvc, node } of plan.adopt) {
    log.info('a node adopts an unheld pool PVC', { pvc, node });
    await annotate(pvc, node);
  }
  const assigned = new Map(plan.assigned);
  for (const node of plan.create) {
    const name = newPoolClaimName();
    log.info('making a pool PVC', { pvc: name, node, storageClass: config.pvcPerNode.storageClass });
    await core.createNamespacedPersistentVolumeClaim({
      namespace,
      body: {
        metadata: { name, namespace, labels: { [ROLE_LABEL]: POOL_PVC_ROLE }, annotations: { [POOL_NODE_ANNOTATION]: node } },
        spec: {
          accessModes: ['ReadWriteOnce'],
          volumeMode: 'Filesystem',
          storageClassName: config.pvcPerNode.storageClass,
          resources: { requests: { storage: String(config.pvcPerNode.pvSizePerNodeBytes) } },
        },
      },
    });
    assigned.set(node, name);
  }
  for (const { pvc, where } of plan.unreachable) {
    const object = pvcs.get(pvc)!;
    const message = `pool PVC ${pvc} is held by no node and no selected node can use it (its volume needs ${where}): it waits for a node there`;
    await o
      .warn(object, 'PoolVolumeUnreachable', message)
      .catch((e) => log.warn('could not record an Event', { error: String(e) }));
  }
  // A failed growth (a refused patch, no right to read StorageClasses) holds nothing else up:
  // logged, and tried again on the next pass.
  await growPoolVolumes({
    core,
    storage: o.storage,
    namespace,
    storageClass: config.pvcPerNode.storageClass,
    wantBytes: config.pvcPerNode.pvSizePerNodeBytes,
    pvcs: listed.items,
    held: new Set(plan.assigned.values()),
    log,
    warn: o.warn,
  }).catch((e) => log.warn('could not grow the pool PVCs', { error: String(e) }));
  if (plan.replaced.length > 0) log.info('cordoned nodes being replaced get no new server pod', { nodes: plan.replaced });
  return { assigned, replaced: new Set(plan.replaced) };
}

function notFound(e: unknown): undefined {
  if (e instanceof ApiException && e.code === 404) return undefined;
  throw e;
}
