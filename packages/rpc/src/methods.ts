import { MAX_MESSAGE_BYTES, MAX_METADATA_KEY_BYTES, MAX_METADATA_KEYS, MAX_METADATA_VALUE_BYTES } from '@dotmesh/core';
import { z } from 'zod';
import { backupParamSchema } from './backup.ts';
import { SERVICE } from './codec.ts';
import { bool, decodeWithSchema, int, type ParamsSchema, str, stringMap } from './params.ts';
import type {
  AllDotsAndBranches,
  ApiKeyResult,
  BackupV1,
  CommitItem,
  CommitSizesResult,
  Container,
  DiffResult,
  DotList,
  DotListWithContainers,
  DotmeshVolume,
  DurabilityInfo,
  FoundCommit,
  JoinTokenCreated,
  JoinTokenInfo,
  LastModifiedResult,
  PathToTopLevelFilesystem,
  PinnedInfo,
  PoolStatus,
  ReplicationLatency,
  SafeUser,
  TransferPollResult,
  VersionInfo,
} from './types.ts';

/**
 * The DotmeshRPC methods our server implements, one entry each: params schema (Go field
 * names; decoded Go-style by `decodeParams`), whether the caller must be the admin user, and
 * whether password (not API key) authentication is required. Result types are in ResultMap.
 * Names are validated by the server (with the original's texts), not here: schemas only fix
 * types and sizes.
 */

const noParams = z.object({});
const stringParam = str();
const dotParams = z.object({ Namespace: str(), Name: str() });
const branchParams = z.object({ Namespace: str(), Name: str(), Branch: str() });

export const METHODS = {
  Ping: { params: noParams, admin: false, route: 'here' },
  Version: { params: noParams, admin: true, route: 'here' },
  Config: { params: noParams, admin: true, route: 'here' },
  CurrentUser: { params: noParams, admin: false, route: 'here' },
  AuthenticatedUser: { params: noParams, admin: false, route: 'here', passwordAuth: true },
  GetApiKey: { params: noParams, admin: false, route: 'here' },
  ResetApiKey: { params: noParams, admin: false, route: 'here', passwordAuth: true },
  UpdatePassword: { params: z.object({ NewPassword: str() }), admin: false, route: 'here', passwordAuth: true },
  RegisterNewUser: { params: z.object({ Name: str(), Email: str(), Password: str() }), admin: true, route: 'here' },
  AddCollaborator: {
    params: z.object({ MasterBranchID: str(), Collaborator: str() }),
    admin: false,
    route: { fsId: 'MasterBranchID' },
  },
  RemoveCollaborator: {
    params: z.object({ MasterBranchID: str(), Collaborator: str() }),
    admin: false,
    route: { fsId: 'MasterBranchID' },
  },
  List: { params: noParams, admin: false, route: 'here' },
  ListWithContainers: { params: noParams, admin: false, route: 'here' },
  AllDotsAndBranches: { params: noParams, admin: false, route: 'here' },
  Get: { params: stringParam, admin: false, route: { fsId: null } },
  Lookup: { params: branchParams, admin: false, route: 'here' },
  Exists: { params: branchParams, admin: false, route: 'here' },
  CheckNameIsValid: { params: branchParams, admin: false, route: 'here' },
  Create: { params: dotParams, admin: false, route: 'here' },
  Delete: { params: dotParams, admin: false, route: { branch: null } },
  Branches: { params: dotParams, admin: false, route: 'here' },
  Branch: {
    params: z.object({ Namespace: str(), Name: str(), SourceBranch: str(), NewBranchName: str(), SourceCommitId: str() }),
    admin: false,
    route: { branch: 'SourceBranch' },
  },
  Commit: {
    params: z.object({
      Namespace: str(),
      Name: str(),
      Branch: str(),
      Message: str(MAX_MESSAGE_BYTES),
      Metadata: stringMap({
        maxKeys: MAX_METADATA_KEYS,
        maxKeyBytes: MAX_METADATA_KEY_BYTES,
        maxValueBytes: MAX_METADATA_VALUE_BYTES,
      }),
    }),
    admin: false,
    route: { branch: 'Branch' },
  },
  Commits: { params: branchParams, admin: false, route: { branch: 'Branch' } },
  CommitsById: { params: stringParam, admin: false, route: { fsId: null } },
  Rollback: {
    params: z.object({ Namespace: str(), Name: str(), Branch: str(), SnapshotId: str() }),
    admin: true,
    route: { branch: 'Branch' },
  },
  Procure: { params: z.object({ Namespace: str(), Name: str(), Subdot: str() }), admin: true, route: 'here' },
  SwitchContainers: {
    // StopOthers (ours, optional): stop the containers already on the branch instead of refusing.
    params: z.object({ Namespace: str(), Name: str(), NewBranchName: str(), StopOthers: z.boolean().optional() }),
    admin: true,
    route: 'here',
  },
  Containers: { params: branchParams, admin: false, route: { branch: 'Branch' } },
  ContainersById: { params: stringParam, admin: false, route: { fsId: null } },
  GetReplicationLatencyForBranch: { params: branchParams, admin: true, route: 'here' },
  // Additions: a dot's or branch's durability (`sync`: a Commit replies once another node holds it).
  GetDurability: { params: branchParams, admin: false, route: 'here' },
  SetDurability: {
    // WholeDot: the dot's own setting (its branches' unless set on one), Branch ignored. Durability "" clears it.
    params: z.object({ Namespace: str(), Name: str(), Branch: str(), WholeDot: bool(), Durability: str() }),
    admin: false,
    route: 'here',
  },
  // Additions: a branch pinned to its master node (no automatic failover when that node is gone).
  GetPinned: { params: branchParams, admin: false, route: 'here' },
  SetBranchPinned: {
    // WholeDot: the dot's own pin (all its branches, later ones too), Branch ignored.
    params: z.object({ Namespace: str(), Name: str(), Branch: str(), WholeDot: bool(), Pinned: bool() }),
    admin: false,
    route: 'here',
  },
  SetDebugFlag: { params: z.object({ FlagName: str(), FlagValue: str() }), admin: true, route: 'here' },
  DumpInternalState: { params: stringParam, admin: true, route: 'here' },
  Diff: { params: z.object({ FilesystemID: str() }), admin: false, route: { fsId: 'FilesystemID' } },
  LastModified: { params: dotParams, admin: false, route: { branch: null } },
  MountCommit: { params: z.object({ FilesystemId: str(), CommitId: str() }), admin: false, route: 'here' },
  ForceBranchMasterById: { params: z.object({ FilesystemId: str(), Master: str() }), admin: true, route: 'here' },
  // An addition: hand a branch to another node (on its master; Procure on another node does it).
  MoveBranch: { params: z.object({ BranchId: str(), Node: str() }), admin: true, route: { fsId: 'BranchId' } },
  Transfer: {
    params: transferRequestSchema(),
    admin: false,
    route: { branch: 'LocalBranchName', namespace: 'LocalNamespace', name: 'LocalName' },
  },
  GetTransfer: { params: stringParam, admin: false, route: 'here' },
  RegisterTransfer: { params: transferPollSchema(), admin: false, route: 'here' },
  DeducePathToTopLevelFilesystem: {
    params: z.object({ RemoteNamespace: str(), RemoteFilesystemName: str(), RemoteCloneName: str() }),
    admin: false,
    route: 'here',
  },
  RegisterFilesystem: {
    params: z.object({
      Namespace: str(),
      TopLevelFilesystemName: str(),
      CloneName: str(),
      FilesystemId: str(),
      PathToTopLevelFilesystem: z.unknown().optional(),
      BecomeMasterIfNotExists: bool(),
    }),
    admin: false,
    route: 'here',
  },
  PredictSize: {
    params: z.object({ FromFilesystemId: str(), FromSnapshotId: str(), ToFilesystemId: str(), ToSnapshotId: str() }),
    admin: false,
    route: { fsId: 'FromFilesystemId' },
  },
  StashAfter: { params: z.object({ FilesystemId: str(), SnapshotId: str() }), admin: false, route: { fsId: 'FilesystemId' } },
  Fork: {
    params: z.object({ MasterBranchID: str(), ForkNamespace: str(), ForkName: str() }),
    admin: true,
    route: { fsId: 'MasterBranchID' },
  },
  // Additions of this server (not in the original), see docs/api.md.
  DiffCommits: {
    params: z.object({ Namespace: str(), Name: str(), Branch: str(), FromCommit: str(), ToCommit: str() }),
    admin: false,
    route: { branch: 'Branch' },
  },
  CommitSizes: { params: branchParams, admin: false, route: { branch: 'Branch' } },
  PoolInfo: { params: noParams, admin: true, route: 'here' },
  GrowPool: { params: z.object({ SizeBytes: int() }), admin: true, route: 'here' },
  DumpEtcd: { params: z.object({ Prefix: str() }), admin: true, route: 'here' },
  // Volumes for Kubernetes (the CSI driver) and anyone else: additions, see docs/api.md.
  DeleteBranch: { params: branchParams, admin: false, route: { branch: 'Branch' } },
  DeleteCommit: { params: z.object({ FilesystemId: str(), CommitId: str() }), admin: false, route: { fsId: 'FilesystemId' } },
  FindCommits: { params: z.object({ Key: str(), Value: str() }), admin: false, route: 'here' },
  DeleteSubdot: {
    params: z.object({ Namespace: str(), Name: str(), Branch: str(), Subdot: str() }),
    admin: false,
    route: { branch: 'Branch' },
  },
  Capacity: { params: noParams, admin: false, route: 'here' },
  AttachBranch: {
    params: z.object({ FilesystemId: str(), Node: str(), Volume: str(), ReadOnly: bool() }),
    admin: false,
    route: { fsId: 'FilesystemId' },
  },
  DetachBranch: { params: z.object({ FilesystemId: str(), Node: str(), Volume: str() }), admin: false, route: 'here' },
  PublishBranch: {
    params: z.object({ FilesystemId: str(), Subdot: str(), Volume: str(), Target: str(), ReadOnly: bool() }),
    admin: false,
    route: 'here',
  },
  UnpublishBranch: { params: z.object({ FilesystemId: str(), Target: str() }), admin: false, route: 'here' },
  BranchPublications: { params: stringParam, admin: false, route: 'here' },
  NodeUses: { params: noParams, admin: true, route: 'here' },
  BranchById: { params: stringParam, admin: false, route: 'here' },
  RestoreEtcd: { params: z.object({ Prefix: str(), Dump: backupParamSchema }), admin: true, route: 'here' },
  CreateJoinToken: {
    params: z.object({ TtlSeconds: int(), Uses: int(), Description: str() }),
    admin: true,
    route: 'here',
  },
  ListJoinTokens: { params: noParams, admin: true, route: 'here' },
  DeleteJoinToken: { params: z.object({ Id: str() }), admin: true, route: 'here' },
  RemoveEtcdMember: { params: z.object({ Node: str() }), admin: true, route: 'here' },
  EtcdMembers: { params: noParams, admin: true, route: 'here' },
  EndPlannedRestart: { params: z.object({ Node: str() }), admin: true, route: 'here' },
  ClusterCa: { params: noParams, admin: true, route: 'here' },
} as const satisfies Record<string, MethodSpec>;

/** The fields a TransferRequest and a TransferPollResult share (original-dotmesh.md §4). */
function transferFields() {
  return {
    Peer: str(),
    User: str(),
    ApiKey: str(),
    Direction: str(),
    LocalNamespace: str(),
    LocalName: str(),
    LocalBranchName: str(),
    RemoteNamespace: str(),
    RemoteName: str(),
    RemoteBranchName: str(),
    TargetCommit: str(),
  };
}

/** TransferRequest, plus our optional PeerCertSha256 pin, PeerHttps and PeerCaPin. */
function transferRequestSchema() {
  return z.object({
    ...transferFields(),
    Port: int(),
    StashDivergence: bool(),
    /**
     * SHA-256 of the peer's certificate (hex, colons optional, as in known_servers): the peer
     * is dialled over HTTPS and must present exactly that certificate.
     */
    PeerCertSha256: str(),
    /** Dial the peer over HTTPS verified by the system CAs (implied by port 443 or a pin). */
    PeerHttps: bool(),
    /**
     * The pin of the peer cluster's CA (`sha256:<hex>`, as `dm remote add --trust-ca`): the peer
     * is dialled over HTTPS and its certificate must be issued by a CA of that key.
     */
    PeerCaPin: str().optional(),
  });
}

function transferPollSchema() {
  return z.object({
    ...transferFields(),
    TransferRequestId: str(),
    FilesystemId: str(),
    InitiatorNodeId: str(),
    PeerNodeId: str(),
    StartingCommit: str(),
    Index: int(),
    Total: int(),
    Status: str(),
    NanosecondsElapsed: int(),
    Size: int(),
    Sent: int(),
    Message: str(),
  });
}

/**
 * Where a call runs in a cluster of several nodes (the server's dispatcher reads it):
 * - `'here'`: on the node that received it (cluster-wide facts any node knows, users, host
 *   paths, this node's own state);
 * - `{ branch }`: on the master node of the branch named by `Namespace`/`Name` (or the fields
 *   given) and the param `branch` (null: the dot's master branch);
 * - `{ fsId }`: on the master node of the branch whose id is that param (null: the bare string
 *   params of Get-style calls).
 * A call whose branch does not exist runs here (and fails here with the usual error).
 */
export type MethodRoute =
  | 'here'
  | { readonly branch: string | null; readonly namespace?: string; readonly name?: string }
  | { readonly fsId: string | null };

export interface MethodSpec {
  readonly params: ParamsSchema;
  /** Caller must be the admin user (`Userid <id> is not admin user`). */
  readonly admin: boolean;
  readonly route: MethodRoute;
  /** Caller must have authenticated with the password, not the API key. */
  readonly passwordAuth?: boolean;
}

export type MethodName = keyof typeof METHODS;

/** Decoded params of a method (every field present, zero values filled in). */
export type ParamsOf<M extends MethodName> = z.output<(typeof METHODS)[M]['params']>;

/** What a caller may send: the full struct, or null/{} for methods without params. */
export type CallParamsOf<M extends MethodName> =
  ParamsOf<M> extends string ? string : Record<string, never> extends ParamsOf<M> ? Record<string, never> | null : ParamsOf<M>;

export interface ResultMap {
  Ping: boolean;
  Version: VersionInfo;
  Config: Record<string, never>;
  CurrentUser: SafeUser;
  AuthenticatedUser: SafeUser;
  GetApiKey: ApiKeyResult;
  ResetApiKey: ApiKeyResult;
  UpdatePassword: SafeUser;
  RegisterNewUser: SafeUser;
  AddCollaborator: boolean;
  RemoveCollaborator: boolean;
  List: DotList;
  ListWithContainers: DotListWithContainers;
  AllDotsAndBranches: AllDotsAndBranches;
  Get: DotmeshVolume;
  /** The branch's filesystem id (an error when the dot or branch does not exist). */
  Lookup: string;
  /** The filesystem id, or "" when absent (never an error for absence). */
  Exists: string;
  /** "" when valid, else the reason (as a result, not an error). */
  CheckNameIsValid: string;
  Create: boolean;
  Delete: boolean;
  /** Sorted branch names, master excluded. */
  Branches: string[];
  Branch: boolean;
  /** The new commit's id. */
  Commit: string;
  /** Oldest first. */
  Commits: CommitItem[];
  CommitsById: CommitItem[];
  Rollback: boolean;
  /** Host path of the dot's subdot, to bind into a container. */
  Procure: string;
  SwitchContainers: boolean;
  Containers: Container[];
  ContainersById: Container[];
  GetReplicationLatencyForBranch: ReplicationLatency;
  GetDurability: DurabilityInfo;
  /** The branch's durability after the change (for WholeDot, the master branch's). */
  SetDurability: DurabilityInfo;
  GetPinned: PinnedInfo;
  /** The branch's pin after the change (for WholeDot, the master branch's). */
  SetBranchPinned: PinnedInfo;
  /** The flag's previous value. */
  SetDebugFlag: string;
  DumpInternalState: Record<string, string>;
  /** Live state vs the branch's latest commit, default subdot only (as the original). */
  Diff: DiffResult;
  LastModified: LastModifiedResult;
  /** Host path of the commit's read-only data. */
  MountCommit: string;
  ForceBranchMasterById: boolean;
  /** The branch's master node after the move, and the store revision of the move. */
  MoveBranch: { Master: string; Revision: number };
  /** The new transfer's id; the transfer runs in the background (poll GetTransfer). */
  Transfer: string;
  GetTransfer: TransferPollResult;
  RegisterTransfer: boolean;
  DeducePathToTopLevelFilesystem: PathToTopLevelFilesystem;
  RegisterFilesystem: boolean;
  /** Estimated bytes of the stream between two commits (FromSnapshotId "" or "START": full). */
  PredictSize: number;
  /** The name of the branch the commits after SnapshotId moved to. */
  StashAfter: string;
  /** The fork's dot id. */
  Fork: string;
  /** Between two commits of a branch's history, or a commit and the live state (whole dot). */
  DiffCommits: DiffResult;
  /** Commit id → its space, for every commit of the branch's history. */
  CommitSizes: CommitSizesResult;
  PoolInfo: PoolStatus;
  /** The pool after growing. */
  GrowPool: PoolStatus;
  DumpEtcd: BackupV1;
  RestoreEtcd: boolean;
  /** The token (shown once) and where to join: the node-to-node address of the node that made it and the CA's pin. */
  CreateJoinToken: JoinTokenCreated;
  ListJoinTokens: JoinTokenInfo[];
  /** false: there was no token with that id. */
  DeleteJoinToken: boolean;
  /** Deleted: the volume is gone; Retired: kept (renamed) for commits still needed. */
  DeleteBranch: { Deleted: boolean; Retired: boolean; KeptCommits: number; Branches: number };
  /** Deleted: gone from the pool; Hidden: kept while a history passes through it. */
  DeleteCommit: { Deleted: boolean; Hidden: boolean };
  /** Every commit held in the cluster whose Metadata[Key] is Value (deleted ones left out). */
  FindCommits: FoundCommit[];
  /** The names left in the branch's data (subdots and other entries). */
  DeleteSubdot: { Remaining: string[] };
  /** The smallest free space among the live nodes' pools, and each node's. */
  Capacity: { FreeBytes: number; Nodes: Record<string, { FreeBytes: number; TotalBytes: number }> };
  /** The branch's master node after the attachment (it moved there), and the store revision. */
  AttachBranch: { Master: string; Revision: number };
  DetachBranch: boolean;
  /** Host path of the subdot's live data on this node (this node masters the branch). */
  PublishBranch: string;
  UnpublishBranch: boolean;
  /** Where a branch volume is: its dot and names ("" for master), and its master node. */
  BranchById: { Id: string; DotId: string; Namespace: string; Name: string; Branch: string; Master: string };
  BranchPublications: {
    Node: string;
    Uses: Array<{ Kind: string; Volume: string; Target: string; ReadOnly: boolean; Subdot: string }>;
  };
  /** The uses (attachments, mounts) recorded on the node that answers, of every branch. */
  NodeUses: {
    Node: string;
    Uses: Array<{ FilesystemId: string; Kind: string; Volume: string; Target: string }>;
  };
  /** Removed: the node had a managed etcd member, removed now; Members: how many the cluster has left. */
  RemoveEtcdMember: { Removed: boolean; Members: number };
  /**
   * The managed etcd's members as etcd lists them: Name is the node id (empty until the member
   * first started), PeerUrls/ClientUrls its addresses, Learner whether it does not vote yet.
   */
  EtcdMembers: { Members: Array<{ Id: string; Name: string; Learner: boolean; PeerUrls: string[]; ClientUrls: string[] }> };
  /** Ended: the node had announced a planned restart whose grace still ran, ended now. */
  EndPlannedRestart: { Ended: boolean };
  /** The cluster CA's certificate (PEM) and its pin, as `dm remote add --trust-ca` takes it. */
  /** HoldsCaKey: this node holds the CA's key, so hosts can join through it. */
  ClusterCa: { Certificate: string; CaHash: string; HoldsCaKey: boolean };
}

export type ResultOf<M extends MethodName> = ResultMap[M];

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}

/** "DotmeshRPC.Commit" → "Commit"; null for another service or an unknown method. */
export function methodFromWire(wireName: string): MethodName | null {
  const prefix = `${SERVICE}.`;
  if (!wireName.startsWith(prefix)) return null;
  const name = wireName.slice(prefix.length);
  return isMethodName(name) ? name : null;
}

/**
 * Validates raw params for a method. Throws DotmeshError('INVALID_ARGUMENT') with a message
 * like `DotmeshRPC.Commit: field "Metadata" must be an object of strings`.
 */
export function decodeParams<M extends MethodName>(method: M, raw: unknown): ParamsOf<M> {
  const schema: ParamsSchema = METHODS[method].params;
  return decodeWithSchema(`${SERVICE}.${method}`, schema, raw) as ParamsOf<M>;
}

/** Reusable params shapes, for methods added later. */
export const commonSchemas = { noParams, stringParam, dotParams, branchParams };
