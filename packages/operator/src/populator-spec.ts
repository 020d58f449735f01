import {
  ALLOWLIST_PARAMETER,
  DEFAULT_NAMESPACE,
  DotmeshError,
  deMasterify,
  NamespaceAllowlist,
  normalizeBranch,
  parseDotName,
  validateName,
  volumeId,
} from '@dotmesh/core';
import type { V1PersistentVolume, V1PersistentVolumeClaim, V1SecretReference, V1StorageClass } from '@kubernetes/client-node';
import { DOT_COMMIT_KIND, type DotCommitObject, GROUP } from './dot-resources.ts';
import { named } from './dot-transfer-spec.ts';

/**
 * The pure half of the volume populator (populator.ts): which PVCs it serves, the checks of
 * their StorageClass and DotCommit, and the PersistentVolume it makes. A PVC is ours when it is
 * Pending, unbound, and its `dataSourceRef` is of group dotmesh.io; csi-provisioner leaves such a
 * claim to "an external populator". Every field a user wrote is checked here before any call:
 * a problem is a DotmeshError naming the field and what to do, which the populator reports as a
 * Warning Event on the PVC.
 *
 * Which dotmesh namespaces a PVC may take a commit from follows the StorageClass rule of the
 * provisioner: the class's own (`dotmeshNamespace`, else the user of its provisioner Secret:
 * `admin` for the Secret `dotmesh`), and those its `dotmeshNamespaceAllowlist` gives the PVC's
 * Kubernetes namespace. Anything else is another user's dot: PERMISSION_DENIED.
 */
export const CSI_DRIVER = 'csi.dotmesh.io';
export const PROVISIONED_BY = 'pv.kubernetes.io/provisioned-by';
/** csi-provisioner reads DeleteVolume's secrets from these when the PV is released. */
export const DELETION_SECRET_NAME = 'volume.kubernetes.io/provisioner-deletion-secret-name';
export const DELETION_SECRET_NAMESPACE = 'volume.kubernetes.io/provisioner-deletion-secret-namespace';
/** On the PVs the populator makes: `<namespace>/<DotCommit>@<commit>`. */
export const POPULATED_FROM = 'dotmesh.io/populated-from';
const CSI_PREFIX = 'csi.storage.k8s.io/';
const DEFAULT_CAPACITY = '1Gi';
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

type SecretRole = 'provisioner' | 'controller-publish' | 'node-stage' | 'node-publish';
const SECRET_ROLES: readonly SecretRole[] = ['provisioner', 'controller-publish', 'node-stage', 'node-publish'];

export interface ClassSettings {
  readonly name: string;
  /** The `dotmeshNamespace` parameter, when given. */
  readonly dotmeshNamespace?: string;
  readonly allowlist: NamespaceAllowlist;
  readonly secrets: Readonly<Partial<Record<SecretRole, { readonly name: string; readonly namespace: string }>>>;
  readonly reclaimPolicy: string;
  readonly mountOptions?: readonly string[];
}

export interface PopulationPlan {
  readonly claim: { readonly namespace: string; readonly name: string; readonly uid: string };
  /** The DotCommit: `<namespace>/<name>`. */
  readonly source: string;
  readonly dot: { readonly namespace: string; readonly name: string };
  /** "" for master (as on the wire). */
  readonly branch: string;
  /** The commit the DotCommit names or was pinned to; undefined: the branch's newest, to pin. */
  readonly commit?: string;
  /** Where to pull from when the commit is not here. */
  readonly pull?: { readonly remote: string; readonly remoteDot: string; readonly remoteBranch: string };
  /** The new branch (`pvc-<claim uid>`), which is also the PV's name. */
  readonly newBranch: string;
}

function invalid(message: string, hint: string): never {
  throw new DotmeshError('INVALID_ARGUMENT', message, { hint });
}

/** Whether the populator serves `pvc`: Pending, unbound, not being deleted, its dataSourceRef of group dotmesh.io. */
export function wantsPopulation(pvc: V1PersistentVolumeClaim): boolean {
  return (
    pvc.spec?.dataSourceRef?.apiGroup === GROUP &&
    pvc.status?.phase === 'Pending' &&
    !pvc.spec.volumeName &&
    !pvc.metadata?.deletionTimestamp
  );
}

/** The DotCommit a PVC names (its dataSourceRef checked). */
export function dotCommitName(pvc: V1PersistentVolumeClaim): string {
  const ref = pvc.spec?.dataSourceRef;
  const here = pvc.metadata?.namespace ?? '';
  if (ref?.kind !== DOT_COMMIT_KIND)
    invalid(`spec.dataSourceRef: kind ${JSON.stringify(ref?.kind)} of ${GROUP} is not a source`, `name a ${DOT_COMMIT_KIND}`);
  if (ref.namespace && ref.namespace !== here)
    invalid(
      `spec.dataSourceRef.namespace: a ${DOT_COMMIT_KIND} of another namespace (${ref.namespace.slice(0, 64)}) cannot be used`,
      `make the ${DOT_COMMIT_KIND} in namespace ${here}`,
    );
  if (typeof ref.name !== 'string' || !OBJECT_NAME.test(ref.name))
    invalid('spec.dataSourceRef.name is not an object name', `the name of a ${DOT_COMMIT_KIND} of namespace ${here}`);
  return ref.name;
}

/** A StorageClass's settings the populator uses (undefined class: none of that name); throws DotmeshError. */
export function classSettings(sc: V1StorageClass | undefined, className: string | undefined): ClassSettings {
  if (!className) invalid('the PVC names no StorageClass', `set spec.storageClassName to a class of ${CSI_DRIVER}`);
  if (!sc) invalid(`StorageClass ${className} does not exist`, `set spec.storageClassName to a class of ${CSI_DRIVER}`);
  if (sc.provisioner !== CSI_DRIVER)
    invalid(
      `StorageClass ${className} is of ${String(sc.provisioner).slice(0, 64)}, not ${CSI_DRIVER}`,
      `a PVC from a ${DOT_COMMIT_KIND} needs a StorageClass of ${CSI_DRIVER}`,
    );
  const p = sc.parameters ?? {};
  const where = `StorageClass ${className}`;
  const secrets: Partial<Record<SecretRole, { name: string; namespace: string }>> = {};
  for (const role of SECRET_ROLES) {
    const name = p[`${CSI_PREFIX}${role}-secret-name`];
    const namespace = p[`${CSI_PREFIX}${role}-secret-namespace`];
    if (name === undefined && namespace === undefined) continue;
    if (!name || !namespace || !OBJECT_NAME.test(name) || !OBJECT_NAME.test(namespace))
      invalid(
        `${where}: ${CSI_PREFIX}${role}-secret-name and -namespace must both be object names (templates such as \${pvc.name} are not supported for ${DOT_COMMIT_KIND} sources)`,
        'name one Secret for the class',
      );
    secrets[role] = { name, namespace };
  }
  const dotmeshNamespace =
    p.dotmeshNamespace === undefined
      ? undefined
      : named(`${where}: dotmeshNamespace`, () => validateName('namespace', p.dotmeshNamespace));
  const allowlist = named(where, () => NamespaceAllowlist.parse(p[ALLOWLIST_PARAMETER]));
  return {
    name: className,
    ...(dotmeshNamespace ? { dotmeshNamespace } : {}),
    allowlist,
    secrets,
    reclaimPolicy: sc.reclaimPolicy ?? 'Delete',
    ...(sc.mountOptions ? { mountOptions: sc.mountOptions } : {}),
  };
}

/**
 * The class's own dotmesh namespace: `dotmeshNamespace`, else `secretUser`, the user of its
 * provisioner Secret (`admin` for the Secret `dotmesh`; undefined: it names none).
 */
export function classNamespace(settings: ClassSettings, secretUser: string | undefined): string {
  const own = settings.dotmeshNamespace ?? secretUser;
  if (!own)
    invalid(
      `StorageClass ${settings.name} names no dotmesh user (no provisioner Secret) and no dotmeshNamespace`,
      'give the class its csi.storage.k8s.io/provisioner-secret-* parameters',
    );
  return own;
}

/** The plan for `pvc` from DotCommit `dc` (undefined: none of that name) under the class; throws DotmeshError. */
export function populationPlan(
  pvc: V1PersistentVolumeClaim,
  settings: ClassSettings,
  ownNamespace: string,
  dc: DotCommitObject | undefined,
): PopulationPlan {
  const claim = { namespace: pvc.metadata?.namespace ?? '', name: pvc.metadata?.name ?? '', uid: pvc.metadata?.uid ?? '' };
  const dcName = dotCommitName(pvc);
  const source = `${claim.namespace}/${dcName}`;
  if (pvc.spec?.volumeMode === 'Block') invalid('volumeMode Block is not supported', 'dotmesh volumes are file systems');
  if (!dc) invalid(`${DOT_COMMIT_KIND} ${source} does not exist`, `create it in namespace ${claim.namespace}`);
  const spec = dc.spec ?? {};
  const field = (f: string) => `${DOT_COMMIT_KIND} ${source}: spec.${f}`;
  if (typeof spec.dot !== 'string' || spec.dot === '')
    invalid(`${field('dot')} must be a non-empty string`, 'the dot, as [namespace/]name');
  const dotText = spec.dot;
  const dot = named(field('dot'), () => parseDotName(dotText, ownNamespace));
  if (dot.namespace !== ownNamespace && !settings.allowlist.allows(claim.namespace, dot.namespace)) {
    throw new DotmeshError(
      'PERMISSION_DENIED',
      `Kubernetes namespace ${claim.namespace} may not use dotmesh namespace ${dot.namespace} (StorageClass ${settings.name} allows ${ownNamespace}; see its ${ALLOWLIST_PARAMETER})`,
      { hint: `name a dot of ${ownNamespace}, or have an administrator allow ${dot.namespace} for ${claim.namespace}` },
    );
  }
  const branchOf = (value: unknown, f: string) =>
    value === undefined || value === '' ? '' : deMasterify(named(field(f), () => normalizeBranch(value)));
  const branch = branchOf(spec.branch, 'branch');
  const commit =
    spec.commit === undefined || spec.commit === ''
      ? undefined
      : named(field('commit'), () => validateName('commit', spec.commit));
  let pull: PopulationPlan['pull'];
  if (spec.remote !== undefined && spec.remote !== '') {
    if (typeof spec.remote !== 'string' || !OBJECT_NAME.test(spec.remote))
      invalid(`${field('remote')} is not an object name`, 'the name of a DotRemote of the namespace dotmesh');
    const remoteDotText = spec.remoteDot === undefined ? `${dot.namespace}/${dot.name}` : spec.remoteDot;
    if (typeof remoteDotText !== 'string')
      invalid(`${field('remoteDot')} must be a string`, 'the dot on the remote, as [namespace/]name');
    const remoteDot = named(field('remoteDot'), () => parseDotName(remoteDotText, DEFAULT_NAMESPACE));
    pull = {
      remote: spec.remote,
      remoteDot: `${remoteDot.namespace}/${remoteDot.name}`,
      remoteBranch: spec.remoteBranch === undefined ? branch : branchOf(spec.remoteBranch, 'remoteBranch'),
    };
  } else if (spec.remoteDot !== undefined || spec.remoteBranch !== undefined) {
    invalid(`${field('remoteDot')} and spec.remoteBranch need spec.remote`, 'name the DotRemote to pull from, or leave them out');
  }
  return {
    claim,
    source,
    dot,
    branch,
    ...(commit ? { commit } : {}),
    ...(pull ? { pull } : {}),
    newBranch: `pvc-${claim.uid}`,
  };
}

/**
 * The PV of a populated claim, bound to it by its claimRef (uid included, so only that claim
 * binds it): a volume of csi.dotmesh.io as its CreateVolume would describe it (`volumeHandle`
 * the branch's volume id, the same volume attributes), the class's publish and stage Secrets,
 * and the provisioned-by and deletion-secret annotations with which csi-provisioner deletes it
 * (DeleteVolume: the branch) once the claim is gone and the policy is Delete.
 */
export function populatedPv(
  plan: PopulationPlan,
  pvc: V1PersistentVolumeClaim,
  settings: ClassSettings,
  at: { readonly dotId: string; readonly branchId: string; readonly commit: string },
): V1PersistentVolume {
  const ref = (role: SecretRole): { [k: string]: V1SecretReference } => {
    const s = settings.secrets[role];
    const key = {
      'controller-publish': 'controllerPublishSecretRef',
      'node-stage': 'nodeStageSecretRef',
      'node-publish': 'nodePublishSecretRef',
    }[role as Exclude<SecretRole, 'provisioner'>];
    return s ? { [key]: { name: s.name, namespace: s.namespace } } : {};
  };
  const deletion = settings.secrets.provisioner;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: {
      name: plan.newBranch,
      annotations: {
        [PROVISIONED_BY]: CSI_DRIVER,
        [POPULATED_FROM]: `${plan.source}@${at.commit}`,
        ...(deletion ? { [DELETION_SECRET_NAME]: deletion.name, [DELETION_SECRET_NAMESPACE]: deletion.namespace } : {}),
      },
    },
    spec: {
      capacity: { storage: pvc.spec?.resources?.requests?.storage ?? DEFAULT_CAPACITY },
      accessModes: pvc.spec?.accessModes?.length ? pvc.spec.accessModes : ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: settings.reclaimPolicy,
      storageClassName: settings.name,
      volumeMode: 'Filesystem',
      ...(settings.mountOptions ? { mountOptions: [...settings.mountOptions] } : {}),
      claimRef: {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        namespace: plan.claim.namespace,
        name: plan.claim.name,
        uid: plan.claim.uid,
      },
      csi: {
        driver: CSI_DRIVER,
        volumeHandle: volumeId({ namespace: plan.dot.namespace, dotId: at.dotId, branchId: at.branchId, subdot: '' }),
        volumeAttributes: { dotmeshNamespace: plan.dot.namespace, dotmeshDot: plan.dot.name, dotmeshBranch: plan.newBranch },
        ...ref('controller-publish'),
        ...ref('node-stage'),
        ...ref('node-publish'),
      },
    },
  };
}
