/**
 * The report a server whose moved etcd member no other member answers leaves when it exits (as
 * its Kubernetes container's termination message): what its pool's member data holds. The
 * operator reads it from the pod's status to choose the member an etcd recovery starts from
 * (packages/operator/src/etcd-recovery.ts). One JSON object under STRANDED_KEY.
 */
export interface StrandedReport {
  /** The Dotmesh node id of the pool (its member's name). */
  readonly nodeId: string;
  /** The highest raft index the member's data holds committed. */
  readonly raftIndex: number;
  /** The revision of the member's key-value data. */
  readonly revision: number;
  /** The etcd cluster's id (decimal). */
  readonly clusterId: string;
  /** Whether the pool's state holds the cluster CA's key (it can issue its certificates at a new address). */
  readonly holdsCaKey: boolean;
  /** The voting members the member saw at its last start. */
  readonly voters: number;
}

/** The termination message's key (a server writes `{"dotmeshEtcdStranded": {...}}`). */
export const STRANDED_KEY = 'dotmeshEtcdStranded';

const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** A termination message's report, validated (undefined: not a report, or a malformed one). */
export function parseStrandedReport(message: string | undefined): StrandedReport | undefined {
  if (!message) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return undefined;
  }
  const r = (parsed as Record<string, unknown> | null)?.[STRANDED_KEY] as Record<string, unknown> | undefined;
  if (typeof r !== 'object' || r === null) return undefined;
  const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (
    typeof r.nodeId !== 'string' ||
    !NODE_ID.test(r.nodeId) ||
    !count(r.raftIndex) ||
    !count(r.revision) ||
    typeof r.clusterId !== 'string' ||
    !/^[0-9]{1,20}$/.test(r.clusterId) ||
    typeof r.holdsCaKey !== 'boolean' ||
    !count(r.voters) ||
    (r.voters as number) > 7
  ) {
    return undefined;
  }
  return {
    nodeId: r.nodeId,
    raftIndex: r.raftIndex as number,
    revision: r.revision as number,
    clusterId: r.clusterId,
    holdsCaKey: r.holdsCaKey,
    voters: r.voters as number,
  };
}

/** The termination message for `report`. */
export function formatStrandedReport(report: StrandedReport): string {
  return `${JSON.stringify({ [STRANDED_KEY]: report })}\n`;
}
