import { branchHead, type CommitOrigin, historyFrom } from '@dotmesh/core';

/**
 * What one server tells another about a dot before a transfer (protocol v1, `POST
 * /transfer/v1/state`): every branch volume with its origin and ALL its own commits (hidden
 * ones too, so the other side never sends a commit that is already here), plus the dirt and
 * containers that decide whether data may be written. Enough for the initiator to compute
 * both sides' histories with the same rules the server itself uses (core's branchHead and
 * historyFrom).
 */
export interface WireCommit {
  readonly id: string;
  readonly parent: CommitOrigin | null;
  readonly metadata: Record<string, string>;
}

export interface WireVolume {
  readonly fsId: string;
  readonly branch: string;
  readonly origin: CommitOrigin | null;
  /** Own commits in append order. */
  readonly commits: readonly WireCommit[];
  readonly hidden: readonly string[];
  /** Bytes written since the newest commit (0 when clean). */
  readonly dirtyBytes: number;
  readonly containers: readonly string[];
}

export interface WireDot {
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  readonly volumes: readonly WireVolume[];
}

/** One entry of a branch's history on the wire: which volume holds the commit, and its data. */
export interface HistoryEntry extends WireCommit {
  readonly fsId: string;
}

/** The history of branch `fsId` of the server described by `d`, oldest first ([] when it has no such branch). */
export function wireHistory(d: WireDot, fsId: string): HistoryEntry[] {
  // By id, a later volume winning over an earlier one of the same id.
  const volumes = new Map(d.volumes.map((v) => [v.fsId, v]));
  const v = volumes.get(fsId);
  if (!v) return [];
  const head = branchHead(fsId, v.commits, v.hidden, v.origin);
  const find = (ref: CommitOrigin) => volumes.get(ref.fsId)?.commits.find((c) => c.id === ref.commitId);
  return historyFrom(head, find, (c) => c.parent).map((h) => ({
    fsId: h.fsId,
    id: h.commitId,
    parent: h.commit.parent,
    metadata: { ...h.commit.metadata },
  }));
}

export function volumeOf(d: WireDot, fsId: string): WireVolume | undefined {
  return d.volumes.find((v) => v.fsId === fsId);
}

/** Whether the server described by `d` holds commit `commitId` in volume `fsId` (hidden or not). */
export function holds(d: WireDot | null, fsId: string, commitId: string): boolean {
  return volumeOf(d ?? { id: '', namespace: '', name: '', volumes: [] }, fsId)?.commits.some((c) => c.id === commitId) ?? false;
}
