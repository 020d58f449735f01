/**
 * The decision of an etcd recovery (pvcPerNode: every node replaced at once, so every managed
 * etcd member moved to a new address together, no member reaches another and no majority can
 * form). Pure: the controller gathers what the server pods said and what is recorded, and acts
 * on the plan.
 *
 * A server whose moved member no other member answered exits saying so in its termination
 * message (`StrandedReport`: its member's committed raft index and store revision, read from
 * its data, and whether its pool holds the cluster CA's key). The recovery restarts the cluster
 * from ONE member's data (`force-new-cluster`); every other member sets its data aside and joins
 * it again. Two members forced at once would be two clusters (a split brain that loses the
 * writes of one): so the choice is made here only, by the leader operator, recorded once (the
 * ConfigMap `dotmesh-etcd-recovery`, created or not: the first record wins), and followed as
 * recorded until every server serves again.
 */
import type { StrandedReport } from '@dotmesh/rpc/etcd-stranded';

/** Members a managed etcd grows to by joins (the server's MAX_MANAGED_MEMBERS). */
const MAX_MEMBERS = 3;

/** A recorded recovery: its id and the node whose member restarts the cluster. */
export interface RecordedRecovery {
  readonly id: string;
  readonly from: string;
}

export type RecoveryPlan =
  | { readonly kind: 'none'; readonly why: string }
  | { readonly kind: 'blocked'; readonly why: string }
  | { readonly kind: 'recover'; readonly from: string; readonly recorded: boolean };

/**
 * The member to restart the cluster from, and when it is safe to:
 * - a recorded recovery is followed as recorded (the decision never changes);
 * - never while a server serves (its store answers: no member is stranded);
 * - only once as many distinct members reported stranded as the membership had voters (the
 *   most any report says, and at least min(pools, 3)): a member that has not said so may hold
 *   newer writes (etcd keeps only what a member knew committed when it forces a new cluster),
 *   or may still reach the others;
 * - never across reports of different clusters (blocked);
 * - the newest data: the highest committed raft index, then the highest revision. A committed
 *   write is on a majority, so with every voter reported the newest holds every committed
 *   write. Among members whose revision equals the newest's (the same key-value data: committed
 *   logs never differ, so an equal revision is the same writes), one holding the CA key is
 *   preferred, then the lowest node id; when none of them holds the CA key the recovery is
 *   blocked (the chosen pool must issue its own certificates at its new address: no other
 *   node serves to issue them), never done from older data.
 */
export function planEtcdRecovery(o: {
  readonly reports: readonly StrandedReport[];
  readonly anyServerReady: boolean;
  readonly recorded: RecordedRecovery | undefined;
  /** Pools with a server pod: a cluster of N pools has min(N, 3) members (joins stop at three). */
  readonly pools?: number;
}): RecoveryPlan {
  if (o.recorded) return { kind: 'recover', from: o.recorded.from, recorded: true };
  if (o.anyServerReady) return { kind: 'none', why: 'a server serves: its etcd members answer' };
  const byNode = new Map<string, StrandedReport>();
  for (const r of o.reports) byNode.set(r.nodeId, r);
  const reports = [...byNode.values()];
  if (reports.length === 0) return { kind: 'none', why: 'no server reported its etcd member stranded' };
  const clusters = new Set(reports.map((r) => r.clusterId));
  if (clusters.size > 1) {
    return {
      kind: 'blocked',
      why: `the stranded members belong to different etcd clusters (${[...clusters].join(', ')}): not recovering`,
    };
  }
  const voters = Math.max(...reports.map((r) => r.voters), Math.min(o.pools ?? 0, MAX_MEMBERS));
  if (reports.length < voters) {
    return {
      kind: 'none',
      why: `${reports.length} of ${voters} etcd members reported stranded (${reports.map((r) => r.nodeId).join(', ')}): waiting for the others`,
    };
  }
  const newest = [...reports].sort((x, y) => y.raftIndex - x.raftIndex || y.revision - x.revision)[0]!;
  const sameData = reports.filter((r) => r.revision === newest.revision).sort((x, y) => (x.nodeId < y.nodeId ? -1 : 1));
  const chosen = sameData.find((r) => r.holdsCaKey);
  if (!chosen) {
    return {
      kind: 'blocked',
      why: `the newest etcd data is node ${newest.nodeId}'s (raft index ${newest.raftIndex}, revision ${newest.revision}) and no pool with that data holds the cluster CA's key: restore etcd from a backup (dm cluster restore-etcd)`,
    };
  }
  return { kind: 'recover', from: chosen.nodeId, recorded: false };
}

/** A new recovery's id: `r` and the time in base 36 (a recovery id is never reused). */
export function newRecoveryId(now: number): string {
  return `r${now.toString(36)}`;
}
