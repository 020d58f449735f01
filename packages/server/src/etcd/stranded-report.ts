import { readFile, writeFile } from 'node:fs/promises';
import { formatStrandedReport } from '@dotmesh/rpc/etcd-stranded';
import type { EtcdMemberState } from '@dotmesh/store/etcd-members';

/**
 * The voting members this node last knew: the most of those its status file recorded at the
 * member's last start and of the client URLs its config followed since (`knownEndpoints`, the
 * members' URLs the server keeps as they change; loopback ones not counted). The status file
 * alone is stale on a member that has not restarted since others joined.
 */
export async function knownVoters(statusFile: string, knownEndpoints: readonly string[]): Promise<number> {
  const followed = new Set(knownEndpoints.filter((e) => !/^https?:\/\/(127\.|\[::1\]|localhost)/.test(e))).size;
  return Math.max(await lastVoters(statusFile), followed);
}

/** The voting members the member's status file recorded at its last start (1 when it says none). */
export async function lastVoters(statusFile: string): Promise<number> {
  try {
    const status = JSON.parse(await readFile(statusFile, 'utf8')) as { voters?: unknown };
    return typeof status.voters === 'number' && Number.isSafeInteger(status.voters) && status.voters > 0 ? status.voters : 1;
  } catch {
    return 1;
  }
}

/**
 * Leaves the report of a stranded member (its data's state; @dotmesh/rpc/etcd-stranded) in
 * `file`, the container's termination message file, for the operator to read from the pod's
 * status once the server has exited.
 */
export async function writeStrandedReport(
  file: string,
  o: { nodeId: string; state: EtcdMemberState; holdsCaKey: boolean; statusFile: string; knownEndpoints: readonly string[] },
): Promise<void> {
  const report = {
    nodeId: o.nodeId,
    raftIndex: o.state.raftIndex,
    revision: o.state.revision,
    clusterId: o.state.clusterId,
    holdsCaKey: o.holdsCaKey,
    voters: await knownVoters(o.statusFile, o.knownEndpoints),
  };
  await writeFile(file, formatStrandedReport(report));
}
