import { ALLOWLIST_PARAMETER, DEFAULT_SUBDOT, isDotmeshError, NamespaceAllowlist, validateName } from '@dotmesh/core';
import type { V1PersistentVolume, V1PersistentVolumeClaim, V1StorageClass } from '@kubernetes/client-node';

/** The provisioner's name, as StorageClasses name it (the original's). */
export const PROVISIONER_NAME = 'dotmesh/dotmesh-dynamic-provisioner';
/** The FlexVolume driver the PVs name. */
export const FLEX_DRIVER = 'dotmesh.io/dm';
/** StorageClass parameter and PVC annotations, as the original. */
export const NAMESPACE_PARAMETER = 'dotmeshNamespace';
export const ANNOTATIONS = { namespace: 'dotmeshNamespace', name: 'dotmeshName', subdot: 'dotmeshSubdot' } as const;
export const DEFAULT_DOTMESH_NAMESPACE = 'admin';
/** Set on the PVs this provisioner makes (as every external provisioner does). */
export const PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';
/** Parameters a class may carry; anything else is refused (a typo would otherwise be ignored). */
const KNOWN_PARAMETERS = new Set([NAMESPACE_PARAMETER, ALLOWLIST_PARAMETER]);
/** The capacity a PV states when its PVC asks for none (dots have no fixed size). */
const DEFAULT_CAPACITY = '1Gi';

export type Decision =
  | { readonly kind: 'ignore' }
  | { readonly kind: 'provision'; readonly pv: V1PersistentVolume }
  | { readonly kind: 'refuse'; readonly reason: string; readonly message: string };

/**
 * What to do about a PVC: nothing (bound, not pending, or of another provisioner's class), a
 * PV naming the dot with the FlexVolume source, or a refusal to report as an Event. The dot is
 * `dotmeshNamespace/dotmeshName` (annotations; defaults: the class's `dotmeshNamespace`, itself
 * `admin` by default, and the PVC's name); a namespace other than the class's must be allowed
 * for the PVC's Kubernetes namespace by the class's allowlist. The dot is made when the pod
 * first mounts it (Procure), as in the original.
 */
export function decide(
  pvc: V1PersistentVolumeClaim,
  storageClass: V1StorageClass | undefined,
  name = PROVISIONER_NAME,
): Decision {
  if (pvc.status?.phase !== 'Pending' || pvc.spec?.volumeName || pvc.metadata?.deletionTimestamp) return { kind: 'ignore' };
  if (!storageClass || storageClass.provisioner !== name) return { kind: 'ignore' };
  const k8sNamespace = pvc.metadata?.namespace ?? '';
  const claimName = pvc.metadata?.name ?? '';
  const uid = pvc.metadata?.uid ?? '';
  const params = storageClass.parameters ?? {};
  const refuse = (message: string): Decision => ({ kind: 'refuse', reason: 'ProvisioningFailed', message });
  const unknown = Object.keys(params).filter((k) => !KNOWN_PARAMETERS.has(k));
  if (unknown.length > 0) {
    return refuse(
      `StorageClass ${storageClass.metadata?.name}: unknown parameter ${JSON.stringify(unknown[0]!.slice(0, 64))} (dotmesh takes dotmeshNamespace and dotmeshNamespaceAllowlist)`,
    );
  }
  if (pvc.spec?.volumeMode === 'Block') return refuse('dotmesh volumes are file systems: volumeMode Block is not supported');
  if (pvc.spec?.dataSource || pvc.spec?.dataSourceRef) {
    return refuse(
      'dotmesh.io/dm volumes cannot be made from a data source (use the CSI driver csi.dotmesh.io for snapshots and clones)',
    );
  }
  const annotations = pvc.metadata?.annotations ?? {};
  let dotmeshNamespace: string;
  let dot: string;
  let subdot: string;
  let allowlist: NamespaceAllowlist;
  let classNamespace: string;
  try {
    classNamespace = validateName('namespace', params[NAMESPACE_PARAMETER] || DEFAULT_DOTMESH_NAMESPACE);
    allowlist = NamespaceAllowlist.parse(params[ALLOWLIST_PARAMETER]);
    dotmeshNamespace = validateName('namespace', annotations[ANNOTATIONS.namespace] || classNamespace);
    dot = validateName('dot', annotations[ANNOTATIONS.name] || claimName);
    subdot = validateName('subdot', annotations[ANNOTATIONS.subdot] || DEFAULT_SUBDOT);
  } catch (e) {
    const message = isDotmeshError(e) ? e.message : String(e);
    return refuse(`PVC ${k8sNamespace}/${claimName}: ${message}`);
  }
  if (dotmeshNamespace !== classNamespace && !allowlist.allows(k8sNamespace, dotmeshNamespace)) {
    return refuse(
      `PVC ${k8sNamespace}/${claimName}: Kubernetes namespace ${k8sNamespace} may not use dotmesh namespace ${dotmeshNamespace} (StorageClass ${storageClass.metadata?.name} allows ${classNamespace}; see its dotmeshNamespaceAllowlist)`,
    );
  }
  const options = { namespace: dotmeshNamespace, name: dot, subdot };
  return {
    kind: 'provision',
    pv: {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: {
        name: `pvc-${uid}`,
        annotations: {
          [PROVISIONED_BY]: name,
          [ANNOTATIONS.namespace]: dotmeshNamespace,
          [ANNOTATIONS.name]: dot,
          [ANNOTATIONS.subdot]: subdot,
        },
      },
      spec: {
        capacity: { storage: pvc.spec?.resources?.requests?.storage ?? DEFAULT_CAPACITY },
        accessModes: pvc.spec?.accessModes?.length ? pvc.spec.accessModes : ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: storageClass.reclaimPolicy ?? 'Delete',
        storageClassName: storageClass.metadata?.name ?? '',
        volumeMode: 'Filesystem',
        ...(storageClass.mountOptions ? { mountOptions: storageClass.mountOptions } : {}),
        claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: k8sNamespace, name: claimName, uid },
        flexVolume: { driver: FLEX_DRIVER, options },
      },
    },
  };
}

/**
 * Whether a PV is ours to remove: made by this provisioner, released by its claim, reclaim
 * policy Delete. Removing it removes the PV only — the dot and its commits stay (the original
 * never deleted dots either); `dm dot delete` removes the data.
 */
export function shouldDeletePv(pv: V1PersistentVolume, name = PROVISIONER_NAME): boolean {
  return (
    pv.metadata?.annotations?.[PROVISIONED_BY] === name &&
    pv.spec?.persistentVolumeReclaimPolicy === 'Delete' &&
    pv.status?.phase === 'Released' &&
    !pv.metadata?.deletionTimestamp
  );
}

/** The StorageClass a PVC names (spec, or the legacy beta annotation). */
export function storageClassOf(pvc: V1PersistentVolumeClaim): string | undefined {
  return pvc.spec?.storageClassName ?? pvc.metadata?.annotations?.['volume.beta.kubernetes.io/storage-class'] ?? undefined;
}
