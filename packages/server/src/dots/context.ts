import type { StorageDriver } from '@dotmesh/storage';
import type { KeyedQueue } from '../concurrency/keyed-queue.ts';
import type { KeyedRwLock } from '../concurrency/rw-lock.ts';
import type { Failpoints } from '../failpoints.ts';
import type { Logger } from '../log.ts';
import type { WriteGuard } from '../pool/host-space-guard.ts';
import type { ContainerTracker } from './containers.ts';
import type { DotIndex } from './dot-index.ts';
import type { InUseChecker } from './in-use.ts';
import type { StoreMirror } from './store-mirror.ts';

/**
 * Everything the dot operations share. Lock order (always taken in this order, never the
 * reverse, so no deadlock is possible):
 *   1. the name lock `name:<ns>/<dot>` (create only), exclusive;
 *   2. the dot lock `<dotId>`: shared for branch-level work (commit, branch), exclusive for
 *      dot-wide work (delete, rollback — it may garbage-collect commits other branches see);
 *   3. the branch queue `<fsId>` (or `new:<dotId>/<branch>` for a branch being created).
 */
export interface DotContext {
  readonly driver: StorageDriver;
  readonly index: DotIndex;
  readonly mirror: StoreMirror;
  readonly failpoints: Failpoints;
  readonly logger: Logger;
  readonly locks: KeyedRwLock;
  readonly queues: KeyedQueue;
  readonly containers: ContainerTracker;
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
