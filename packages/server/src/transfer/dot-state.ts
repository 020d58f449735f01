import type { CommitOrigin } from '@dotmesh/core';
import type { DotContext } from '../dots/context.ts';
import { DotIndex } from '../dots/dot-index.ts';
import { newBranchLabel } from '../dots/labels.ts';

/**
 * What one server tells another about a dot before a transfer (protocol v1, `POST
 * /transfer/v1/state`): every branch volume with its origin and ALL its own commits (hidden
 * ones too, so the other side never sends a commit that is already here), plus the dirt and
 * containers that decide whether data may be written. Enough for the initiator to compute
 * both sides' histories with the same code the server itself uses (DotIndex).
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

export async function describeDot(
  ctx: Pick<DotContext, 'containers' | 'index' | 'storage'>,
  dotId: string,
): Promise<WireDot | null> {
  const dot = ctx.index.dots.get(dotId);
  if (!dot) return null;
  const fsIds = [...dot.branches.values()];
  const sizes = await ctx.storage.sizes(fsIds);
  const volumes: WireVolume[] = [];
  for (const fsId of fsIds) {
    const b = ctx.index.branches.get(fsId);
    if (!b) continue;
    const s = sizes.get(fsId);
    volumes.push({
      fsId,
      branch: b.label.branch,
      origin: b.label.origin,
      commits: b.commits.map((c) => ({ id: c.id, parent: c.meta.parent, metadata: { ...c.meta.metadata } })),
      hidden: [...b.label.hiddenCommits],
      dirtyBytes: s?.dirty ? Math.max(1, s.dirtyBytes) : 0,
      containers: (await ctx.containers.containersFor(fsId)).map((c) => c.Name),
    });
  }
  return { id: dot.id, namespace: dot.info.namespace, name: dot.info.name, volumes };
}

/** A DotIndex holding only this dot, to compute histories of another server's branches. */
export function indexOfWireDot(d: WireDot): DotIndex {
  const index = new DotIndex();
  index.addDot(d.id, { namespace: d.namespace, name: d.name, ownerId: '', collaboratorIds: [], createdAt: '' });
  for (const v of d.volumes) {
    const label = newBranchLabel({
      fsId: v.fsId,
      dotId: d.id,
      branch: v.branch,
      origin: v.origin,
      createdAt: '',
      hiddenCommits: v.hidden,
    });
    index.addBranch(
      label,
      v.commits.map((c, seq) => ({ id: c.id, seq, meta: { metadata: { ...c.metadata }, parent: c.parent } })),
    );
  }
  return index;
}

/** One entry of a branch's history on the wire: which volume holds the commit, and its data. */
export interface HistoryEntry extends WireCommit {
  readonly fsId: string;
}

export function wireHistory(d: WireDot, fsId: string): HistoryEntry[] {
  const index = indexOfWireDot(d);
  if (!index.branches.has(fsId)) return [];
  return index.history(fsId).map((h) => ({
    fsId: h.fsId,
    id: h.commitId,
    parent: h.commit.meta.parent,
    metadata: { ...h.commit.meta.metadata },
  }));
}

export function volumeOf(d: WireDot, fsId: string): WireVolume | undefined {
  return d.volumes.find((v) => v.fsId === fsId);
}

/** Whether the server described by `d` holds commit `commitId` in volume `fsId` (hidden or not). */
export function holds(d: WireDot | null, fsId: string, commitId: string): boolean {
  return volumeOf(d ?? { id: '', namespace: '', name: '', volumes: [] }, fsId)?.commits.some((c) => c.id === commitId) ?? false;
}
