import { invalid } from './grpc-errors.ts';

/**
 * StorageClass parameters the driver reads (CreateVolume `parameters`):
 * - `dotmeshNamespace`: the namespace new dots go in (default: the user's own);
 * - `dotmeshDot: <namespace>/<name>`: every volume of the class is a subdot of that dot's master
 *   branch (made when missing), named from the PVC (`csi.storage.k8s.io/pvc/namespace` and
 *   `/pvc/name`, which csi-provisioner adds with `--extra-create-metadata`) when that fits a
 *   subdot name, else `csi-<hash of the volume name>`.
 * - `dotmeshNamespaceAllowlist`: read by the operator's volume populator only (which dotmesh
 *   namespaces the PVCs of each Kubernetes namespace may take a DotCommit from); accepted here.
 * The `csi.storage.k8s.io/` keys csi-provisioner adds are accepted; any other key is refused
 * (INVALID_ARGUMENT), so that a misspelt parameter is not silently ignored.
 */
export interface VolumeParameters {
  readonly namespace?: string;
  readonly dot?: { readonly namespace: string; readonly name: string };
  /** The subdot a `dotmeshDot` volume gets from its PVC, when the PVC's names make one. */
  readonly pvcSubdot?: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const KNOWN = new Set(['dotmeshNamespace', 'dotmeshDot', 'dotmeshNamespaceAllowlist']);
const PROVISIONER_PREFIX = 'csi.storage.k8s.io/';

export function parseVolumeParameters(raw: Readonly<Record<string, string>> | undefined): VolumeParameters {
  const p = raw ?? {};
  for (const key of Object.keys(p)) {
    if (!KNOWN.has(key) && !key.startsWith(PROVISIONER_PREFIX)) {
      throw invalid(`unknown StorageClass parameter ${JSON.stringify(key.slice(0, 64))} (known: ${[...KNOWN].join(', ')})`);
    }
  }
  const out: { namespace?: string; dot?: { namespace: string; name: string }; pvcSubdot?: string } = {};
  const ns = p.dotmeshNamespace;
  if (ns !== undefined) {
    if (!NAME.test(ns)) throw invalid('dotmeshNamespace must be 1 to 64 letters, digits, "_" or "-"');
    out.namespace = ns;
  }
  const dot = p.dotmeshDot;
  if (dot !== undefined) {
    const [namespace = '', name = '', ...rest] = dot.split('/');
    if (rest.length > 0 || !NAME.test(namespace) || !NAME.test(name)) {
      throw invalid('dotmeshDot must be <namespace>/<name>, each 1 to 64 letters, digits, "_" or "-"');
    }
    out.dot = { namespace, name };
    const pvc = `${p[`${PROVISIONER_PREFIX}pvc/namespace`] ?? ''}-${p[`${PROVISIONER_PREFIX}pvc/name`] ?? ''}`.replaceAll(
      '.',
      '_',
    );
    if (pvc !== '-' && NAME.test(pvc) && !pvc.startsWith('-') && !pvc.endsWith('-')) out.pvcSubdot = pvc;
  }
  return out;
}
