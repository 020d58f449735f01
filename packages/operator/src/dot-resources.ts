import { createHash } from 'node:crypto';
import type { V1ObjectMeta } from '@kubernetes/client-node';

/**
 * The custom resources of group `dotmesh.io` (their CRDs are in the manifest docs/kubernetes.md
 * gives users), all namespaced and living in the operator's namespace: the operator reads
 * DotRemotes, DotTransfers and the Secrets they name only there, so that whoever may create a
 * DotTransfer cannot make the operator read a Secret of another namespace.
 *
 * - `Dot`: a mirror of one dot of the Dotmesh store (the truth), made, updated and deleted by
 *   the operator (dot-mirror.ts); everything is in its status.
 * - `DotRemote`: another Dotmesh cluster (address, user, trust), its API key in a Secret.
 * - `DotTransfer`: one push or pull of a dot's branch to or from a DotRemote, run once by the
 *   operator through a server of this cluster (dot-transfers.ts), like a Job.
 * - `DotCommit`: one commit of a dot (pulled from a DotRemote when it is not here), the source a
 *   PVC's `dataSourceRef` names to start as a new branch of it (populator.ts). Unlike the
 *   others it lives in the users' namespaces, beside the PVCs that name it.
 */
export const GROUP = 'dotmesh.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const DOTS = 'dots';
export const DOT_REMOTES = 'dotremotes';
export const DOT_TRANSFERS = 'dottransfers';
export const DOT_COMMITS = 'dotcommits';
export const DOT_COMMIT_KIND = 'DotCommit';
/** On every Dot object the operator made: how it finds its mirrors among other Dot objects. */
export const MIRROR_LABEL = 'dotmesh.io/mirror';
/** The key of a DotRemote's Secret holding the API key when `apiKeySecret.key` is not given. */
export const DEFAULT_API_KEY_KEY = 'apiKey';

export interface DotBranchStatus {
  readonly name: string;
  readonly commits: number;
  readonly sizeBytes: number;
  /** The Kubernetes node whose server masters the branch (the Dotmesh node id when unknown). */
  readonly masterNode: string;
}

export interface DotStatus {
  /** `<namespace>/<name>` in Dotmesh. */
  readonly dot: string;
  readonly dotmeshNamespace: string;
  readonly dotmeshName: string;
  readonly id: string;
  /** The branch names, master first, comma-separated (the printer column). */
  readonly branchNames: string;
  readonly branches: readonly DotBranchStatus[];
  readonly sizeBytes: number;
  /** sizeBytes for people: `1.5GiB`. */
  readonly size: string;
  readonly masterNode: string;
  /** `<servers holding every commit of the master branch>/<servers>`. */
  readonly replication: string;
}

export interface DotObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata: V1ObjectMeta;
  readonly status?: DotStatus;
}

export interface DotRemoteSpec {
  readonly host?: unknown;
  readonly port?: unknown;
  readonly user?: unknown;
  /** `sha256:<hex>` of the remote cluster's CA (its ConfigMap dotmesh-cluster-ca): HTTPS checked by it. */
  readonly caPin?: unknown;
  /** Plain HTTP: the API key travels unencrypted (a trusted network only). */
  readonly plainHttp?: unknown;
  readonly apiKeySecret?: { readonly name?: unknown; readonly key?: unknown };
}

export interface DotRemoteObject {
  readonly metadata: V1ObjectMeta;
  readonly spec?: DotRemoteSpec;
}

export interface DotTransferSpec {
  readonly remote?: unknown;
  readonly direction?: unknown;
  /** The dot here, `[namespace/]name` (namespace admin when not given). */
  readonly dot?: unknown;
  readonly branch?: unknown;
  /** The dot on the remote (default: the same name). */
  readonly remoteDot?: unknown;
  readonly remoteBranch?: unknown;
  readonly stashDivergence?: unknown;
}

/** The structured error of a transfer: a Dotmesh error code, its message and hint. */
export interface TransferErrorStatus {
  readonly code: string;
  readonly message: string;
  readonly hint?: string;
}

export type TransferPhase = 'Pending' | 'Running' | 'Completed' | 'Failed';

export interface DotTransferStatus {
  readonly phase: TransferPhase;
  /** The server's transfer id (GetTransfer) and the node whose server runs it. */
  readonly transferId?: string;
  readonly node?: string;
  /** The server's own state: `pushing`, `retry 2`, `finished`, … */
  readonly state?: string;
  /** `<commits sent>/<commits> commits, <bytes sent>/<bytes> bytes`. */
  readonly progress?: string;
  readonly commitsSent?: number;
  readonly commitsTotal?: number;
  readonly bytesSent?: number;
  readonly bytesTotal?: number;
  /** Failed attempts the server retried. */
  readonly retries?: number;
  readonly message?: string;
  readonly error?: TransferErrorStatus;
  readonly startTime?: string;
  readonly completionTime?: string;
}

export interface DotTransferObject {
  readonly metadata: V1ObjectMeta;
  readonly spec?: DotTransferSpec;
  readonly status?: DotTransferStatus;
}

export interface DotCommitSpec {
  /** The dot here, `[namespace/]name` (the StorageClass's dotmesh namespace when not given). */
  readonly dot?: unknown;
  /** Its branch (default master): the commit's branch, and the branch pulled. */
  readonly branch?: unknown;
  /** The commit id; left out: the branch's newest commit when the first PVC is populated. */
  readonly commit?: unknown;
  /** A DotRemote of the operator's namespace to pull from when the commit is not here. */
  readonly remote?: unknown;
  readonly remoteDot?: unknown;
  readonly remoteBranch?: unknown;
}

export interface DotCommitStatus {
  /** The commit the DotCommit stands for, fixed once known: every PVC of it gets this commit. */
  readonly commit?: string;
  /** `<namespace>/<name>` here. */
  readonly dot?: string;
  /** The DotTransfer (operator's namespace) that pulled it, when one did. */
  readonly transfer?: string;
  readonly message?: string;
}

export interface DotCommitObject {
  readonly metadata: V1ObjectMeta;
  readonly spec?: DotCommitSpec;
  readonly status?: DotCommitStatus;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * The name of the Dot object mirroring Dotmesh dot `namespace/name`: `name` for the namespace
 * admin, `namespace.name` otherwise, when that is a valid object name (lower case, no `_`);
 * else `namespace.name.<hash>` with both parts lower-cased and `_` made `-` (Dotmesh names never
 * hold a `.`, so the three forms cannot collide, and the hash keeps `Foo` and `foo` apart).
 */
export function dotObjectName(namespace: string, name: string): string {
  const plain = namespace === 'admin' ? name : `${namespace}.${name}`;
  if (DNS_SUBDOMAIN.test(plain)) return plain;
  const label = (s: string) =>
    s
      .toLowerCase()
      .replaceAll('_', '-')
      .replace(/^-+|-+$/g, '') || 'x';
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 10);
  return `${label(namespace)}.${label(name)}.${hash}`;
}
