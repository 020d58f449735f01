import type { StorageDriver } from '@dotmesh/storage';
import type { MasterNodes } from '../cluster/master-nodes.ts';
import type { BranchPublications } from '../cluster/publications.ts';
import type { ClusterView } from '../cluster/view.ts';
import type { KeyedQueue } from '../concurrency/keyed-queue.ts';
import type { KeyedRwLock } from '../concurrency/rw-lock.ts';
import type { Failpoints } from '../failpoints.ts';
import type { Logger } from '../log.ts';
import type { WriteGuard } from '../pool/host-space-guard.ts';
import type { ContainerTracker } from './containers.ts';
import type { DotIndex } from './dot-index.ts';
import type { InUseChecker } from './in-use.ts';
import type { DotMutations } from './mutation/mutations.ts';

/**
 * What the storage driver offers to everything but the mutation path: paths, listings, sizes,
 * streams and diffs. Creating or removing a subdot directory is a write inside the live data,
 * like a container's, not a change of the dot.
 */
export type StorageReads = Pick<
  StorageDriver,
  | 'kind'
  | 'volumePath'
  | 'commitPath'
  | 'listVolumes'
  | 'listCommits'
  | 'readLabel'
  | 'poolInfo'
  | 'sizes'
  | 'commitSizes'
  | 'exportCommit'
  | 'exportCommitTo'
  | 'diff'
  | 'ensureDirectory'
  | 'removeDirectory'
  | 'listDirectory'
>;

/**
 * What dot operations share. They read the index and the storage, and change anything only
 * through `mutations` (which owns the locks, the store writes and the driver's mutating
 * methods). Each operation's signature picks the parts it uses.
 *
 * Lock order (taken by the mutation path, always in this order, so no deadlock is possible):
 *   1. the name lock `name:<ns>/<dot>` (create, fork), exclusive;
 *   2. the dot lock `<dotId>`: shared for branch-level work (commit, branch), exclusive for
 *      dot-wide work (delete, rollback, receive, stash — they may collect commits other
 *      branches see);
 *   3. the branch queues `<fsId>` (or `new:<dotId>/<branch>` for a branch being created).
 */
export interface DotContext {
  readonly storage: StorageReads;
  readonly index: DotIndex;
  /** The cluster-wide facts (names, branches, masterNodes) every node knows. */
  readonly view: ClusterView;
  readonly mutations: DotMutations;
  readonly masterNodes: MasterNodes;
  readonly failpoints: Failpoints;
  readonly logger: Logger;
  /** The dot locks, for reads that need a dot to hold still (diff, sizes); mutations lock themselves. */
  readonly locks: KeyedRwLock;
  /**
   * One container move at a time per dot (checkout, reset: containers stopped, the data or the
   * link changed, containers started again), keyed by containerMovesKey.
   */
  readonly containerMoves: KeyedQueue;
  readonly containers: ContainerTracker;
  /** Uses of branches outside Dotmesh (Kubernetes attachments and mounts), cluster-wide. */
  readonly publications: BranchPublications;
  readonly inUse: InUseChecker;
  /** Refuses writes while the host under a sparse pool is almost full. */
  readonly writeGuard: WriteGuard;
  readonly nodeId: string;
  readonly now: () => Date;
  readonly newId: () => string;
}

/** Unix nanoseconds as a decimal string, the original's timestamp format. */
export function timestampNs(date: Date): string {
  return (BigInt(date.getTime()) * 1_000_000n).toString();
}
