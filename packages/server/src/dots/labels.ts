import { type CommitOrigin, FS_ID_PATTERN, NAME_PATTERN } from '@dotmesh/core';

/**
 * What the server stores beside each branch's data in the pool (the driver's "label") and
 * inside each commit (the driver's "meta"). The pool is authoritative: these records alone
 * rebuild the server's index after the store is lost.
 */
export const LABEL_KIND = 'dotmesh.branch';
export const LABEL_VERSION = 1;

export interface DotInfo {
  readonly namespace: string;
  readonly name: string;
  readonly ownerId: string;
  readonly collaboratorIds: readonly string[];
  readonly createdAt: string;
  readonly forkParentId?: string;
  readonly forkParentSnapshotId?: string;
}

/** An operation in progress on a branch, recorded before it touches data (redo log). */
export type BranchIntent =
  | { readonly op: 'rollback'; readonly to: CommitOrigin; readonly opId: string }
  | { readonly op: 'delete'; readonly opId: string };

export interface BranchLabel {
  readonly kind: typeof LABEL_KIND;
  readonly version: number;
  readonly fsId: string;
  readonly dotId: string;
  /** "master" for the dot's master branch. */
  readonly branch: string;
  readonly origin: CommitOrigin | null;
  readonly createdAt: string;
  /** Own commits dropped from the history (by a rollback) but kept because a branch needs them. */
  readonly hiddenCommits: readonly string[];
  /** Present on the master branch only. */
  readonly dot?: DotInfo;
  readonly intent?: BranchIntent;
  /**
   * This copy is a replica: another node masters the branch (it was handed over, or this copy
   * came from its master). When the store is lost, only copies without it claim mastership.
   */
  readonly replica?: boolean;
  /**
   * When the branch was deleted (ISO time) while commits of its were still needed: it is kept,
   * renamed `__deleted-<fsId>`, until nothing needs them (dots/delete-branch.ts).
   */
  readonly retired?: string;
  /**
   * Own commits deleted with DeleteCommit but kept because a history still passes through them
   * (they are hidden too, and never retained).
   */
  readonly deletedCommits?: readonly string[];
}

/** A new branch's label (no hidden commits, no intent); `dot` for a master branch only. */
export function newBranchLabel(o: {
  readonly fsId: string;
  readonly dotId: string;
  readonly branch: string;
  readonly origin: CommitOrigin | null;
  readonly createdAt: string;
  readonly dot?: DotInfo;
  readonly hiddenCommits?: readonly string[];
}): BranchLabel {
  return {
    kind: LABEL_KIND,
    version: LABEL_VERSION,
    fsId: o.fsId,
    dotId: o.dotId,
    branch: o.branch,
    origin: o.origin,
    createdAt: o.createdAt,
    hiddenCommits: [...(o.hiddenCommits ?? [])],
    ...(o.dot ? { dot: o.dot } : {}),
  };
}

export interface CommitMetaRecord {
  readonly metadata: Record<string, string>;
  /** The previous commit of the history this commit was made on (null for a dot's first). */
  readonly parent: CommitOrigin | null;
}

function isRef(v: unknown): v is CommitOrigin {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.fsId === 'string' && FS_ID_PATTERN.test(r.fsId) && typeof r.commitId === 'string' && NAME_PATTERN.test(r.commitId)
  );
}

/** Validates a label read from disk; returns a reason string when it is not ours or broken. */
export function parseLabel(raw: Record<string, unknown>, volumeId: string): BranchLabel | string {
  if (raw.kind !== LABEL_KIND) return `not a dotmesh branch label (kind ${JSON.stringify(raw.kind)})`;
  if (typeof raw.version !== 'number' || raw.version > LABEL_VERSION) return `unsupported label version ${String(raw.version)}`;
  if (raw.fsId !== volumeId) return `label fsId ${String(raw.fsId)} does not match volume ${volumeId}`;
  if (typeof raw.dotId !== 'string' || !FS_ID_PATTERN.test(raw.dotId)) return 'label has an invalid dotId';
  if (typeof raw.branch !== 'string' || !NAME_PATTERN.test(raw.branch)) return 'label has an invalid branch name';
  if (raw.origin !== null && !isRef(raw.origin)) return 'label has an invalid origin';
  if (!Array.isArray(raw.hiddenCommits) || !raw.hiddenCommits.every((c) => typeof c === 'string')) {
    return 'label has invalid hiddenCommits';
  }
  if (raw.replica !== undefined && typeof raw.replica !== 'boolean') return 'label has an invalid replica flag';
  if (raw.retired !== undefined && typeof raw.retired !== 'string') return 'label has an invalid retired time';
  if (
    raw.deletedCommits !== undefined &&
    (!Array.isArray(raw.deletedCommits) || !raw.deletedCommits.every((c) => typeof c === 'string'))
  ) {
    return 'label has invalid deletedCommits';
  }
  if (raw.branch === 'master') {
    const d = raw.dot as Record<string, unknown> | undefined;
    if (
      !d ||
      typeof d.namespace !== 'string' ||
      typeof d.name !== 'string' ||
      !NAME_PATTERN.test(d.namespace) ||
      !NAME_PATTERN.test(d.name)
    ) {
      return 'master label has no valid dot name';
    }
    if (raw.dotId !== volumeId) return 'master label dotId must equal its fsId';
  }
  return raw as unknown as BranchLabel;
}

export function parseCommitMeta(raw: Record<string, unknown>): CommitMetaRecord {
  const metadata: Record<string, string> = {};
  const m = raw.metadata;
  if (typeof m === 'object' && m !== null) {
    for (const [k, v] of Object.entries(m)) if (typeof v === 'string') metadata[k] = v;
  }
  return { metadata, parent: isRef(raw.parent) ? raw.parent : null };
}
