import type { ErrorObject } from '@dotmesh/core';

/**
 * Result structs of the DotmeshRPC API with the original's exact JSON field names (Go default
 * PascalCase, except VersionInfo which is snake_case). Lists and maps are always present
 * (`[]`/`{}`), never null, unless a field is documented as nullable.
 */

export interface VolumeName {
  Namespace: string;
  Name: string;
}

/** One branch of a dot as the API shows it. */
export interface DotmeshVolume {
  /** Filesystem id of this branch (for the master branch: the dot's id). */
  Id: string;
  Name: VolumeName;
  /** "" for the master branch. */
  Branch: string;
  /** Node id of the branch's master node. */
  Master: string;
  SizeBytes: number;
  DirtyBytes: number;
  CommitCount: number;
  /** node id → state (e.g. "active"). */
  ServerStates: Record<string, string>;
  /** node id → "<status>, N commits". */
  ServerStatuses: Record<string, string>;
  ForkParentId: string;
  ForkParentSnapshotId: string;
}

export interface Container {
  Name: string;
  Id: string;
}

export interface VolumeWithContainers {
  Volume: DotmeshVolume;
  Containers: Container[];
}

/** A commit FindCommits found, with where it is. */
export interface FoundCommit {
  Id: string;
  /** The branch volume that holds it (for a retired branch, `__deleted-<id>`). */
  FilesystemId: string;
  DotId: string;
  Namespace: string;
  Name: string;
  /** "" for master. */
  Branch: string;
  Metadata: Record<string, string>;
}

/** A commit: its id and string metadata (message, author, timestamp in unix ns, …). */
export interface CommitItem {
  Id: string;
  Metadata: Record<string, string>;
}

export interface VersionInfo {
  installed_version: string;
  current_version: string;
  current_release_date: number;
  current_download_url: string;
  current_changelog_url: string;
  project_website: string;
  outdated: boolean;
}

export interface SafeUser {
  Id: string;
  Name: string;
  Email: string;
  /** md5 hex of Email. */
  EmailHash: string;
  Metadata: Record<string, string>;
}

export interface ApiKeyResult {
  ApiKey: string;
}

/** namespace → dot name → master branch. */
export type DotList = Record<string, Record<string, DotmeshVolume>>;
/** namespace → dot name → master branch with the containers using it. */
export type DotListWithContainers = Record<string, Record<string, VolumeWithContainers>>;

export interface DotAndBranches {
  MasterBranch: DotmeshVolume;
  /** null when the dot has no other branch (as the original). */
  OtherBranches: DotmeshVolume[] | null;
  Owner: SafeUser;
  Collaborators: SafeUser[];
  ForkParentId: string;
  ForkParentSnapshotId: string;
}

export interface ServerInfo {
  Id: string;
  Addresses: string[];
}

export interface AllDotsAndBranches {
  Dots: DotAndBranches[];
  Servers: ServerInfo[];
}

/** server id → ids of commits that server is missing. */
export type ReplicationLatency = Record<string, string[]>;

/** A branch's durability (an addition of this server: GetDurability, SetDurability). */
export interface DurabilityInfo {
  /** `sync`: a Commit replies once another node holds the commit; `async`: at once. */
  Durability: 'sync' | 'async';
  /** Where it comes from: set on the branch, on its dot, or the cluster's default. */
  Source: 'branch' | 'dot' | 'cluster';
  /** What is set on the dot ("" nothing). */
  DotDurability: '' | 'sync' | 'async';
  /** What is set on the branch ("" nothing). */
  BranchDurability: '' | 'sync' | 'async';
}

/** Whether a branch is pinned to its master node (an addition of this server: GetPinned, SetBranchPinned). */
export interface PinnedInfo {
  /** true: the branch stays with its master node when that node is gone (no automatic failover). */
  Pinned: boolean;
  /** Where the pin comes from: set on the branch, on its dot; "" not pinned. */
  Source: '' | 'branch' | 'dot';
  /** The dot is pinned (every branch of it). */
  DotPinned: boolean;
  /** The branch itself is pinned. */
  BranchPinned: boolean;
}

/** Space of one commit (an addition of this server). */
export interface CommitSize {
  /** Bytes of data the commit references, shared or not. */
  ReferencedBytes: number;
  /** Bytes only this commit holds: what deleting it would free now. */
  ExclusiveBytes: number;
}

/** commit id → its space. */
export type CommitSizesResult = Record<string, CommitSize>;

/** A join token (without its secret). UsesLeft null: any number of joins until it expires. */
export interface JoinTokenInfo {
  Id: string;
  Created: string;
  Expires: string;
  UsesLeft: number | null;
  Description: string;
}

/** CreateJoinToken's answer: the token, once, and what a joining host needs besides it. */
export interface JoinTokenCreated extends JoinTokenInfo {
  Token: string;
  /** `host:port` of this node's node-to-node endpoint. */
  JoinAddress: string;
  /** `sha256:<hex>` of the cluster CA's SubjectPublicKeyInfo. */
  CaHash: string;
}

/** The node's pool (an addition of this server). */
export interface PoolStatus {
  NodeId: string;
  FormatVersion: number;
  /** Size of the pool file (of the filesystem, for an existing mount). */
  SizeBytes: number;
  /** Size and free space of the mounted filesystem as statfs reports them. */
  TotalBytes: number;
  FreeBytes: number;
  /** false for an existing btrfs mount, which dotmesh does not grow. */
  Growable: boolean;
}

/** One changed entry (the original's ZFSFileDiff: lower-case JSON names). */
export interface FileDiff {
  /** `+` added, `-` removed, `M` modified, `R` moved (to `to`). */
  change: '+' | '-' | 'M' | 'R';
  filename: string;
  /** New path of a moved entry (`R` only; an addition of this server). */
  to?: string;
}

export interface DiffResult {
  /** Sorted by filename; [] when nothing changed. */
  Files: FileDiff[];
}

export interface LastModifiedResult {
  /** RFC 3339, UTC, whole seconds. */
  Time: string;
}

/**
 * The state of a transfer as `GetTransfer` returns it. `Status` is one of `starting`,
 * `pushing`, `pulling`, `retry N`, `finished`, `error` (the original's `calculating size` is
 * never shown: the estimate is worked out while the data moves); `Index`/`Total` count the
 * commits sent (1-based; `Index == Total` when finished); `Size`/`Sent` are bytes of the whole
 * transfer (Size estimated, 0 until the estimate is known). `ApiKey` is always "" (the key lives only in memory).
 * `Message` is the human text (the original's field); `Error` (an addition of this server) is
 * the last failure as a structured error: set with `Status` `retry N` or `error`, null before
 * any failure and once the transfer finished.
 */
export interface TransferPollResult {
  TransferRequestId: string;
  Peer: string;
  User: string;
  ApiKey: string;
  Direction: string;
  LocalNamespace: string;
  LocalName: string;
  LocalBranchName: string;
  RemoteNamespace: string;
  RemoteName: string;
  RemoteBranchName: string;
  FilesystemId: string;
  InitiatorNodeId: string;
  PeerNodeId: string;
  StartingCommit: string;
  TargetCommit: string;
  Index: number;
  Total: number;
  Status: string;
  NanosecondsElapsed: number;
  Size: number;
  Sent: number;
  Message: string;
  /** Absent from the original's and older records: read it as null. */
  Error?: ErrorObject | null;
}

/** A branch's filesystem and its origin (original-dotmesh.md §4). */
export interface CloneInfo {
  TopLevelFilesystemId: string;
  FilesystemId: string;
  Name: string;
  Origin: { FilesystemId: string; SnapshotId: string };
}

/** How a branch descends from its dot's master: root → tip. */
export interface PathToTopLevelFilesystem {
  TopLevelFilesystemId: string;
  TopLevelFilesystemName: VolumeName;
  Clones: Array<{ Name: string; Clone: CloneInfo }>;
}

export type { BackupClone, BackupFilesystemMaster, BackupRegistryFilesystem, BackupUser, BackupV1 } from './backup.ts';
