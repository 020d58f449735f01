import { DotmeshError, deMasterify, MASTER_BRANCH, normalizeBranch, validateName } from '@dotmesh/core';
import type { DotmeshVolume } from '@dotmesh/rpc';
import type { VolumeSizes } from '@dotmesh/storage';
import type { MasterNodes } from '../cluster/master-nodes.ts';
import { pinSource } from '../cluster/pinned.ts';
import type { ClusterDot, ClusterView } from '../cluster/view.ts';
import { type Caller, canAccess } from './caller.ts';
import { notFound } from './create-delete.ts';
import type { DotIndex } from './dot-index.ts';

/**
 * What any node answers about every dot of the cluster, without asking another node: names,
 * ids, owners, branches and master nodes from the cluster view; a branch's figures from this node's
 * pool when it masters the branch, else from what its master advertises (its state record:
 * head and commit count; its size and uncommitted bytes). Calls that need a branch's data
 * (commits, containers, mutations) are routed to its master instead (router.ts). A branch whose
 * master node is gone (its lease expired) is shown with what the live nodes hold: the newest
 * copy's commit count, and its master `gone` with what the branch waits for (masterGoneStatus).
 */
export class DotCatalog {
  readonly #view: ClusterView;
  readonly #index: DotIndex;
  readonly #masterNodes: MasterNodes;

  constructor(view: ClusterView, index: DotIndex, masterNodes: MasterNodes) {
    this.#view = view;
    this.#index = index;
    this.#masterNodes = masterNodes;
  }

  /** Dots the caller may see (owner, collaborator or admin), by namespace then name. */
  visibleDots(caller: Caller): ClusterDot[] {
    return this.#view
      .dots()
      .filter((d) => canAccess(caller, d))
      .sort((a, b) => (a.namespace === b.namespace ? a.name.localeCompare(b.name) : a.namespace.localeCompare(b.namespace)));
  }

  /** A dot by name for a caller who may see it (DOT_NOT_FOUND, the original's text, otherwise). */
  requireDot(caller: Caller, namespace: unknown, name: unknown): ClusterDot {
    const ns = validateName('namespace', namespace);
    const dotName = validateName('dot', name);
    const dot = this.#view.dotByName(ns, dotName);
    if (!dot || !canAccess(caller, dot)) throw notFound(ns, dotName);
    return dot;
  }

  /** A dot by name, or undefined when it does not exist or the caller may not see it. */
  findDot(caller: Caller, namespace: string, name: string): ClusterDot | undefined {
    const dot = this.#view.dotByName(namespace, name);
    return dot && canAccess(caller, dot) ? dot : undefined;
  }

  /** Branch name → id of a dot, master included. */
  branches(dotId: string): ReadonlyMap<string, string> {
    return this.#view.branchesOf(dotId);
  }

  /** A branch's id by dot and branch name ("" = master), or BRANCH_NOT_FOUND. */
  requireBranchId(caller: Caller, namespace: unknown, name: unknown, branch: unknown): string {
    const dot = this.requireDot(caller, namespace, name);
    const b = normalizeBranch(branch);
    const fsId = this.branches(dot.id).get(b);
    if (fsId === undefined) {
      throw new DotmeshError('BRANCH_NOT_FOUND', `Branch does not exist: ${b}`, {
        hint: `list the branches of ${dot.namespace}/${dot.name} with 'dm branch'`,
        data: { dotId: dot.id, branch: b },
      });
    }
    return fsId;
  }

  /** The master node of a branch ("" when it has none). */
  masterNodeOf(fsId: string): string {
    return this.#masterNodes.get(fsId)?.nodeId ?? '';
  }

  /** Whether `nodeId` names a master node that is gone: not this node, and not live (its lease expired). */
  isGone(nodeId: string): boolean {
    return nodeId !== '' && nodeId !== this.#masterNodes.nodeId && !this.#view.node(nodeId);
  }

  /**
   * The API's view of one branch (DotmeshVolume, the original's shape). `sizes`: this node's
   * sizes of the volumes it holds (SizeTracker).
   */
  volume(dot: ClusterDot, fsId: string, sizes: ReadonlyMap<string, VolumeSizes>): DotmeshVolume {
    const branch = this.#view.branch(fsId);
    const master = this.masterNodeOf(fsId);
    const local = master === this.#masterNodes.nodeId && this.#index.branches.has(fsId);
    const copies = this.#view.copiesOf(fsId);
    let commitCount: number;
    let sizeBytes: number;
    let dirtyBytes: number;
    if (local) {
      commitCount = this.#index.listedHistory(fsId).length;
      const s = sizes.get(fsId);
      sizeBytes = s?.referencedBytes ?? 0;
      dirtyBytes = s?.dirty ? Math.max(s.dirtyBytes, 1) : 0;
    } else {
      commitCount = this.isGone(master)
        ? // What failover would continue from: the newest copy a live node holds.
          Math.max(0, ...[...copies.values()].map((c) => c.commitCount ?? 0))
        : (copies.get(master)?.commitCount ?? 0);
      const d = this.#view.dirty(fsId);
      sizeBytes = d?.size_bytes ?? 0;
      dirtyBytes = d?.dirty_bytes ?? 0;
    }
    const states: Record<string, string> = {};
    const statuses: Record<string, string> = {};
    for (const [node, copy] of copies) {
      states[node] = copy.state.state;
      statuses[node] = copy.state.status;
    }
    if (local) {
      states[master] = 'active';
      statuses[master] = `active, ${commitCount} commits`;
    } else if (this.isGone(master) && branch) {
      states[master] = 'gone';
      statuses[master] = masterGoneStatus(pinSource(this.#view.pinnedOf(branch.dotId), fsId) !== '');
    }
    return {
      Id: fsId,
      Name: { Namespace: dot.namespace, Name: dot.name },
      Branch: deMasterify(branch?.name ?? MASTER_BRANCH),
      Master: master,
      SizeBytes: sizeBytes,
      DirtyBytes: dirtyBytes,
      CommitCount: commitCount,
      ServerStates: states,
      ServerStatuses: statuses,
      ForkParentId: dot.forkParentId,
      ForkParentSnapshotId: dot.forkParentSnapshotId,
    };
  }
}

/**
 * The status of a branch's master node that is gone (ServerStatuses, so `dm dot show` of the
 * original client shows it too): what the branch waits for.
 */
export function masterGoneStatus(pinned: boolean): string {
  return pinned
    ? 'gone (its lease expired): the branch is pinned to it and waits for it, or for dm dot smash-branch-master'
    : 'gone (its lease expired): the branch waits for failover to the live node holding its newest commit';
}
