import { type CommitOrigin, MASTER_BRANCH } from '@dotmesh/core';
import type { Compare, TxnOp } from '@dotmesh/store';
import {
  type BranchStateRecord,
  cloneRecord,
  type DeletedCommitRecord,
  type DeletedRecord,
  type HeldCommitRecord,
  KEYS,
  type MasterRecord,
  registryRecord,
} from '../../cluster/store-keys.ts';
import type { IndexedCommit } from '../dot-index.ts';
import type { BranchLabel, DotInfo } from '../labels.ts';

/**
 * The store operations of the mutations, one builder per fact, so every mutation writes a
 * fact the same way. Own keys (`servers/…/<nodeId>/…`) get this node's lease from the
 * mutation path.
 */

/** The key must not exist yet (a name, branch or master being claimed). */
export function absent(key: string): Compare {
  return { key, target: 'createRevision', op: '==', value: 0 };
}

export function putRegistry(dotId: string, info: DotInfo): TxnOp {
  return {
    type: 'put',
    key: KEYS.registry(info.namespace, info.name),
    value: JSON.stringify(
      registryRecord({
        dotId,
        namespace: info.namespace,
        name: info.name,
        ownerId: info.ownerId,
        collaboratorIds: info.collaboratorIds,
        forkParentId: info.forkParentId,
        forkParentSnapshotId: info.forkParentSnapshotId,
      }),
    ),
  };
}

export function putClone(label: BranchLabel): TxnOp {
  return {
    type: 'put',
    key: KEYS.clone(label.dotId, label.branch),
    value: JSON.stringify(cloneRecord(label.dotId, label.fsId, label.branch, label.origin)),
  };
}

export function putMaster(fsId: string, nodeId: string): TxnOp {
  return {
    type: 'put',
    key: KEYS.master(fsId),
    value: JSON.stringify({ filesystem_id: fsId, node_id: nodeId } satisfies MasterRecord),
  };
}

export function putHeldCommit(nodeId: string, fsId: string, commit: IndexedCommit): TxnOp {
  return {
    type: 'put',
    key: KEYS.commit(nodeId, fsId, commit.id),
    value: JSON.stringify({
      Id: commit.id,
      Metadata: commit.meta.metadata,
      Parent: commit.meta.parent,
    } satisfies HeldCommitRecord),
  };
}

export function putBranchState(
  nodeId: string,
  fsId: string,
  o: { readonly head: CommitOrigin | null; readonly commitCount: number; readonly active: boolean },
): TxnOp {
  const state = o.active ? 'active' : 'inactive';
  return {
    type: 'put',
    key: KEYS.state(nodeId, fsId),
    value: JSON.stringify({
      id: nodeId,
      filesystem_id: fsId,
      state: { state, status: `${state}, ${o.commitCount} commits` },
      head: o.head,
      commitCount: o.commitCount,
    } satisfies BranchStateRecord),
  };
}

/**
 * Everything a new branch (a dot's master branch included) claims in the store: its clone
 * record (not for master: the registry names the dot), its master key (this node), and this
 * node's copy's state. Compares that the branch name and the master key are free.
 */
export function claimBranch(
  nodeId: string,
  label: BranchLabel,
  o: { readonly head: CommitOrigin | null; readonly commitCount: number },
): { compare: Compare[]; ops: TxnOp[] } {
  const compare: Compare[] = [absent(KEYS.master(label.fsId))];
  const ops: TxnOp[] = [putMaster(label.fsId, nodeId), putBranchState(nodeId, label.fsId, { ...o, active: true })];
  if (label.branch !== MASTER_BRANCH) {
    compare.push(absent(KEYS.clone(label.dotId, label.branch)));
    ops.push(putClone(label));
  }
  return { compare, ops };
}

export function putTombstone(o: {
  readonly fsId: string;
  readonly dotId: string;
  readonly nodeId: string;
  readonly username: string;
  readonly info: DotInfo;
  readonly branch: string;
  readonly at: Date;
}): TxnOp {
  return {
    type: 'put',
    key: KEYS.deleted(o.fsId),
    value: JSON.stringify({
      filesystem_id: o.fsId,
      server: o.nodeId,
      username: o.username,
      deleted_at: o.at.toISOString(),
      name: { Namespace: o.info.namespace, Name: o.info.name },
      top_level_filesystem_id: o.dotId,
      clone: o.branch === MASTER_BRANCH ? '' : o.branch,
    } satisfies DeletedRecord),
  };
}

/**
 * What a branch's master advertises of it under its lease (sizes, containers: branch-advertiser),
 * for deletion with the branch: they would otherwise stay until that lease ends.
 */
export function dropAdvertisedKeys(fsId: string): TxnOp[] {
  return [
    { type: 'delete', key: KEYS.dirty(fsId) },
    { type: 'delete', key: KEYS.containers(fsId) },
  ];
}

/** The tombstone of a commit deleted with DeleteCommit (`filesystems/deleted-commits/<fsId>/<commitId>`). */
export function putDeletedCommit(o: {
  readonly fsId: string;
  readonly commitId: string;
  readonly nodeId: string;
  readonly username: string;
  readonly at: Date;
}): TxnOp {
  return {
    type: 'put',
    key: KEYS.deletedCommit(o.fsId, o.commitId),
    value: JSON.stringify({
      filesystem_id: o.fsId,
      commit_id: o.commitId,
      server: o.nodeId,
      username: o.username,
      deleted_at: o.at.toISOString(),
    } satisfies DeletedCommitRecord),
  };
}

/** This node's keys of one volume (its held commits and its copy's state), for deletion. */
export function dropOwnKeys(nodeId: string, fsId: string): TxnOp[] {
  return [
    { type: 'deletePrefix', prefix: KEYS.commitsOf(nodeId, fsId) },
    { type: 'delete', key: KEYS.state(nodeId, fsId) },
  ];
}
