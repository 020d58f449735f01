import {
  ApiException,
  type CoreV1Api,
  PatchStrategy,
  type StorageV1Api,
  setHeaderOptions,
  type V1PersistentVolumeClaim,
} from '@kubernetes/client-node';
import type { Logger } from './logger.ts';

/**
 * Pool growth, the operator's half (`storageMode: pvcPerNode`): when `pvcPerNode.pvSizePerNode`
 * is above a held pool PVC's request, the PVC's `spec.resources.requests.storage` is raised to it
 * (Kubernetes expands the volume and, online, its filesystem; the node's server then grows the
 * pool into it: the server's pool/volume-growth.ts). Contracts:
 * - only PVCs held by a node (`dotmesh.io/node`) are grown; an unheld one is grown once adopted;
 * - a PVC is never shrunk: a size below its request is refused with a warning Event
 *   `PoolVolumeShrinkRefused` on the PVC (and a log line), once per PVC per version of it;
 * - a PVC whose StorageClass lacks `allowVolumeExpansion: true` is left alone, with a warning
 *   Event `PoolVolumeNotExpandable` naming the class (once per PVC per version); so is a PVC
 *   whose request cannot be read (`PoolVolumeUnreadableSize`).
 */

/** Decimal and binary suffixes of a Kubernetes Quantity, as byte multipliers. */
const QUANTITY_SUFFIXES: Readonly<Record<string, number>> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * The bytes of a storage Quantity ("1Gi", "1500M", "1073741824", "1.5Gi", "1e9"), rounded up to
 * a whole byte as Kubernetes does; undefined when `text` is no Quantity (or a negative one, or
 * one beyond the safe integers).
 */
export function quantityBytes(text: string): number | undefined {
  const m = /^\+?(\d+(?:\.\d*)?|\.\d+)(?:([eE][+-]?\d+)|([kMGTPE]i?|Ki))?$/.exec(text.trim());
  if (!m) return undefined;
  const scale = m[2] ? 10 ** Number(m[2].slice(1)) : QUANTITY_SUFFIXES[m[3] ?? ''];
  if (scale === undefined) return undefined;
  const bytes = Math.ceil(Number(m[1]) * scale);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export interface PoolVolumeSize {
  readonly name: string;
  /** Held by a node (after this step's adoptions). */
  readonly held: boolean;
  /** `spec.resources.requests.storage`, as written. */
  readonly requested: string | undefined;
}

export interface PoolGrowthPlan {
  /** PVCs to raise to the wanted size. */
  readonly grow: readonly { readonly name: string; readonly fromBytes: number }[];
  /** PVCs larger than the wanted size (never shrunk). */
  readonly shrinkRefused: readonly { readonly name: string; readonly requested: string }[];
  /** PVCs whose request is no Quantity. */
  readonly unreadable: readonly string[];
}

/** Which held pool PVCs grow to `wantBytes`, which would have to shrink, which cannot be read. */
export function planPoolGrowth(pvcs: readonly PoolVolumeSize[], wantBytes: number): PoolGrowthPlan {
  const grow: { name: string; fromBytes: number }[] = [];
  const shrinkRefused: { name: string; requested: string }[] = [];
  const unreadable: string[] = [];
  for (const p of pvcs) {
    if (!p.held) continue;
    const bytes = p.requested === undefined ? undefined : quantityBytes(p.requested);
    if (bytes === undefined) unreadable.push(p.name);
    else if (bytes < wantBytes) grow.push({ name: p.name, fromBytes: bytes });
    else if (bytes > wantBytes) shrinkRefused.push({ name: p.name, requested: p.requested! });
  }
  return { grow, shrinkRefused, unreadable };
}

export interface PoolGrowthOptions {
  readonly core: CoreV1Api;
  readonly storage: StorageV1Api;
  readonly namespace: string;
  readonly storageClass: string;
  readonly wantBytes: number;
  /** The pool PVCs, as reconcilePoolVolumes listed them. */
  readonly pvcs: readonly V1PersistentVolumeClaim[];
  /** The names of those held by a node after this step's adoptions and releases. */
  readonly held: ReadonlySet<string>;
  readonly log: Logger;
  /** Records a warning Event `reason` on a PVC, once per PVC per version of it. */
  readonly warn: (pvc: V1PersistentVolumeClaim, reason: string, message: string) => Promise<void>;
}

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Applies planPoolGrowth: patches the requests (when the class allows it), warns about the rest. */
export async function growPoolVolumes(o: PoolGrowthOptions): Promise<void> {
  const byName = new Map(o.pvcs.map((p) => [p.metadata!.name!, p]));
  const plan = planPoolGrowth(
    o.pvcs.map((p) => ({
      name: p.metadata!.name!,
      held: o.held.has(p.metadata!.name!),
      requested: p.spec?.resources?.requests?.storage,
    })),
    o.wantBytes,
  );
  const warn = (name: string, reason: string, message: string) =>
    o.warn(byName.get(name)!, reason, message).catch((e) => o.log.warn('could not record an Event', { error: String(e) }));
  for (const { name, requested } of plan.shrinkRefused) {
    await warn(
      name,
      'PoolVolumeShrinkRefused',
      `pool PVC ${name} requests ${requested}, more than pvcPerNode.pvSizePerNode (${o.wantBytes} bytes): PVCs do not shrink; it keeps its size (set pvSizePerNode to at least ${requested} to silence this)`,
    );
  }
  for (const name of plan.unreadable) {
    await warn(
      name,
      'PoolVolumeUnreadableSize',
      `pool PVC ${name} has no readable spec.resources.requests.storage: it is not grown`,
    );
  }
  if (plan.grow.length === 0) return;
  const classes = new Map<string, boolean | undefined>();
  for (const { name, fromBytes } of plan.grow) {
    const pvc = byName.get(name)!;
    const className = pvc.spec?.storageClassName ?? o.storageClass;
    if (!classes.has(className)) {
      const sc = await o.storage.readStorageClass({ name: className }).catch(notFound);
      classes.set(className, sc === undefined ? undefined : sc.allowVolumeExpansion === true);
    }
    const allowed = classes.get(className);
    if (allowed !== true) {
      await warn(
        name,
        'PoolVolumeNotExpandable',
        allowed === undefined
          ? `pool PVC ${name} cannot grow to ${o.wantBytes} bytes: its StorageClass ${className} does not exist`
          : `pool PVC ${name} cannot grow to ${o.wantBytes} bytes: its StorageClass ${className} does not set allowVolumeExpansion: true (set it, if its provisioner can expand volumes, and the operator grows the PVC)`,
      );
      continue;
    }
    o.log.info('growing a pool PVC: pvcPerNode.pvSizePerNode was raised', { pvc: name, fromBytes, toBytes: o.wantBytes });
    await o.core.patchNamespacedPersistentVolumeClaim(
      { name, namespace: o.namespace, body: { spec: { resources: { requests: { storage: String(o.wantBytes) } } } } },
      MERGE_PATCH,
    );
  }
}

function notFound(e: unknown): undefined {
  if (e instanceof ApiException && e.code === 404) return undefined;
  throw e;
}
