import type { CommitOrigin } from '@dotmesh/core';
import { TRANSFERS_PREFIX } from '@dotmesh/transfer';

/**
 * Every key the server writes in the cluster store, and the shape of its value. The names are
 * the original's (§8 of its facts) except where a value would grow with the number of commits:
 * a node's commits are one key per commit (docs/cluster.md lists each departure).
 *
 * Who writes what:
 * - cluster-wide facts (registry, clones, master keys, tombstones) are written by the node that
 *   masters the branch they describe, in the transaction of the mutation that changes them;
 * - each node writes only its own keys (`servers/<kind>/<nodeId>/…`), bound to its own lease, so
 *   they vanish when the node does.
 */
export const PREFIX = 'dotmesh.io/';

export const KEYS = {
  registryPrefix: `${PREFIX}registry/filesystems/`,
  registry: (namespace: string, name: string) => `${PREFIX}registry/filesystems/${namespace}/${name}`,
  clonesPrefix: `${PREFIX}registry/clones/`,
  clonesOf: (dotId: string) => `${PREFIX}registry/clones/${dotId}/`,
  clone: (dotId: string, branch: string) => `${PREFIX}registry/clones/${dotId}/${branch}`,
  mastersPrefix: `${PREFIX}filesystems/masters/`,
  master: (fsId: string) => `${PREFIX}filesystems/masters/${fsId}`,
  containersPrefix: `${PREFIX}filesystems/containers/`,
  containers: (fsId: string) => `${PREFIX}filesystems/containers/${fsId}`,
  dirtyPrefix: `${PREFIX}filesystems/dirty/`,
  dirty: (fsId: string) => `${PREFIX}filesystems/dirty/${fsId}`,
  deletedPrefix: `${PREFIX}filesystems/deleted/`,
  deleted: (fsId: string) => `${PREFIX}filesystems/deleted/${fsId}`,
  deletedCommitsPrefix: `${PREFIX}filesystems/deleted-commits/`,
  deletedCommit: (fsId: string, commitId: string) => `${PREFIX}filesystems/deleted-commits/${fsId}/${commitId}`,
  publicationsPrefix: `${PREFIX}filesystems/publications/`,
  publications: (fsId: string) => `${PREFIX}filesystems/publications/${fsId}`,
  durabilityPrefix: `${PREFIX}filesystems/durability/`,
  durability: (dotId: string) => `${PREFIX}filesystems/durability/${dotId}`,
  pinnedPrefix: `${PREFIX}filesystems/pinned/`,
  pinned: (dotId: string) => `${PREFIX}filesystems/pinned/${dotId}`,
  commitsPrefix: `${PREFIX}servers/snapshots/`,
  nodeCommits: (nodeId: string) => `${PREFIX}servers/snapshots/${nodeId}/`,
  commitsOf: (nodeId: string, fsId: string) => `${PREFIX}servers/snapshots/${nodeId}/${fsId}/`,
  commit: (nodeId: string, fsId: string, commitId: string) => `${PREFIX}servers/snapshots/${nodeId}/${fsId}/${commitId}`,
  statesPrefix: `${PREFIX}servers/states/`,
  nodeStates: (nodeId: string) => `${PREFIX}servers/states/${nodeId}/`,
  state: (nodeId: string, fsId: string) => `${PREFIX}servers/states/${nodeId}/${fsId}`,
  poolsPrefix: `${PREFIX}servers/pools/`,
  pool: (nodeId: string) => `${PREFIX}servers/pools/${nodeId}`,
  addressesPrefix: `${PREFIX}servers/addresses/`,
  address: (nodeId: string) => `${PREFIX}servers/addresses/${nodeId}`,
  /** A planned restart of a node's server (planned-restart.ts), on a lease of the restart grace. */
  restarting: (nodeId: string) => `${PREFIX}servers/restarting/${nodeId}`,
  usersPrefix: `${PREFIX}users/users/`,
  /** Transfer records (@dotmesh/transfer records.ts writes them). */
  transfersPrefix: TRANSFERS_PREFIX,
  joinTokensPrefix: `${PREFIX}join/tokens/`,
  joinToken: (id: string) => `${PREFIX}join/tokens/${id}`,
} as const;

/** `registry/filesystems/<ns>/<name>`: a dot's name → id, owner and collaborators. */
export interface RegistryRecord {
  readonly Id: string;
  readonly OwnerId: string;
  readonly Name: { readonly Namespace: string; readonly Name: string };
  readonly CollaboratorIds: readonly string[];
  readonly ForkParentId?: string;
  readonly ForkParentSnapshotId?: string;
}

/** `registry/clones/<dotId>/<branch>`: a non-master branch of a dot. */
export interface CloneRecord {
  readonly TopLevelFilesystemId: string;
  readonly FilesystemId: string;
  readonly Name: string;
  readonly Origin: { readonly FilesystemId: string; readonly SnapshotId: string };
}

/** `filesystems/masters/<fsId>`: the node that mounts the branch read-write. Never lease-bound. */
export interface MasterRecord {
  readonly filesystem_id: string;
  readonly node_id: string;
}

/** `filesystems/deleted/<fsId>`: a tombstone; every node destroys its copy of that id. */
export interface DeletedRecord {
  readonly filesystem_id: string;
  readonly server: string;
  readonly username: string;
  readonly deleted_at: string;
  readonly name: { readonly Namespace: string; readonly Name: string };
  readonly top_level_filesystem_id: string;
  readonly clone: string;
}

/**
 * `filesystems/deleted-commits/<fsId>/<commitId>`: a commit deleted with DeleteCommit. It is
 * listed nowhere any more, even where a copy stays because a history passes through it.
 */
export interface DeletedCommitRecord {
  readonly filesystem_id: string;
  readonly commit_id: string;
  readonly server: string;
  readonly username: string;
  readonly deleted_at: string;
}

/**
 * One use of a branch by something outside Dotmesh that the server cannot stop: a volume
 * attached to a node (`attach`, ControllerPublishVolume) or mounted at a target on it (`mount`,
 * NodeStageVolume / NodePublishVolume).
 */
export interface BranchUse {
  readonly kind: 'attach' | 'mount';
  /** The user's name for the use (the CSI volume id). */
  readonly volume: string;
  /** The host path of a mount; "" for an attachment. */
  readonly target: string;
  readonly read_only: boolean;
  /** The subdot mounted ("" for an attachment). */
  readonly subdot: string;
  readonly at: string;
}

/**
 * `filesystems/publications/<fsId>`: the uses of a branch, all on one node (a branch is
 * published on one node at a time). Changed only by compare-and-swap; absent when unused.
 * Not lease-bound: mounts outlive a restart of the server.
 */
export interface PublicationsRecord {
  readonly filesystem_id: string;
  readonly node_id: string;
  readonly uses: readonly BranchUse[];
}

export type Durability = 'sync' | 'async';

/**
 * `filesystems/durability/<dotId>`: the durability set on a dot (`default`, its branches'
 * unless set on one) and on its branches (by branch id). Absent: nothing set. Changed only by
 * compare-and-swap; not lease-bound. Ours (the original had no such setting).
 */
export interface DurabilityRecord {
  readonly dot_id: string;
  readonly default?: Durability;
  readonly branches: Readonly<Record<string, Durability>>;
}

/**
 * `filesystems/pinned/<dotId>`: the dot (`dot`: every branch of it, those made later too) or
 * some of its branches (by branch id) pinned to their master node: no automatic failover.
 * Absent: nothing pinned. Changed only by compare-and-swap; not lease-bound. Ours.
 */
export interface PinnedRecord {
  readonly dot_id: string;
  readonly dot: boolean;
  readonly branches: readonly string[];
}

/** `servers/pools/<nodeId>`: the node's pool space, refreshed by the node. Lease-bound. */
export interface PoolRecord {
  readonly node_id: string;
  readonly free_bytes: number;
  readonly total_bytes: number;
}

/**
 * `servers/snapshots/<nodeId>/<fsId>/<commitId>`: a commit this node holds (hidden ones too:
 * they serve as incremental parents), with its metadata and history parent. Lease-bound.
 */
export interface HeldCommitRecord {
  readonly Id: string;
  readonly Metadata: Readonly<Record<string, string>>;
  readonly Parent: CommitOrigin | null;
}

/**
 * `servers/states/<nodeId>/<fsId>`: the node's copy of a branch: the original's state and
 * status, plus the head of its history and the visible commit count. Lease-bound.
 */
export interface BranchStateRecord {
  readonly id: string;
  readonly filesystem_id: string;
  readonly state: { readonly state: 'active' | 'inactive'; readonly status: string };
  readonly head: CommitOrigin | null;
  readonly commitCount: number;
}

/** `filesystems/dirty/<fsId>`: a branch's size and uncommitted bytes, by its master node. Lease-bound. */
export interface DirtyRecord {
  readonly filesystem_id: string;
  readonly node_id: string;
  readonly dirty_bytes: number;
  readonly size_bytes: number;
}

/** `filesystems/containers/<fsId>`: the containers using a branch, by its master node. Lease-bound. */
export interface ContainersRecord {
  readonly filesystem_id: string;
  readonly node_id: string;
  readonly containers: ReadonlyArray<{ readonly Name: string; readonly Id: string }>;
}

/** `servers/addresses/<nodeId>`: where a live node answers. Lease-bound. */
export interface AddressRecord {
  readonly Id: string;
  readonly Addresses: readonly string[];
}

export function registryRecord(o: {
  readonly dotId: string;
  readonly namespace: string;
  readonly name: string;
  readonly ownerId: string;
  readonly collaboratorIds: readonly string[];
  readonly forkParentId?: string | undefined;
  readonly forkParentSnapshotId?: string | undefined;
}): RegistryRecord {
  return {
    Id: o.dotId,
    OwnerId: o.ownerId,
    Name: { Namespace: o.namespace, Name: o.name },
    CollaboratorIds: [...o.collaboratorIds],
    ...(o.forkParentId ? { ForkParentId: o.forkParentId } : {}),
    ...(o.forkParentSnapshotId ? { ForkParentSnapshotId: o.forkParentSnapshotId } : {}),
  };
}

export function cloneRecord(dotId: string, fsId: string, branch: string, origin: CommitOrigin | null): CloneRecord {
  return {
    TopLevelFilesystemId: dotId,
    FilesystemId: fsId,
    Name: branch,
    Origin: { FilesystemId: origin?.fsId ?? '', SnapshotId: origin?.commitId ?? '' },
  };
}

/** Parses a stored JSON value, or undefined when it is not valid JSON (never throws). */
export function parseValue<T>(value: string | undefined): T | undefined {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    return undefined;
  }
}
