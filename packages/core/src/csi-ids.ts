/**
 * The ids the CSI driver csi.dotmesh.io (packages/csi) hands to Kubernetes, and the metadata of
 * its volume records, here so that the operator's volume populator makes volumes the driver
 * knows as its own. They hold internal ids, never names, so that a dot
 * re-created under an old name never matches an old PersistentVolume:
 *
 * - volume:   `v1/<namespace>/<dot id>/<branch id>` or `…/<branch id>/<subdot>`
 * - snapshot: `s1/<namespace>/<dot id>/<branch id>/<commit id>` or `…/<commit id>/<subdot>`
 * - group snapshot: `g1/<namespace>/<dot id>/<branch id>/<commit id>` (its members are the
 *   snapshots `s1/…/<commit id>/<subdot>` of that one commit)
 *
 * Namespaces, subdots and commit ids are names (letters, digits, `_`, `-`), the dot and branch
 * ids UUIDs: `/` never occurs inside a part. Parsing is strict: anything else is not an id of
 * this driver (`undefined`), which callers answer as the spec says for an unknown id.
 */
export interface VolumeRef {
  readonly namespace: string;
  readonly dotId: string;
  readonly branchId: string;
  /** "" for the branch's default subdot (`__default__`). */
  readonly subdot: string;
}

export interface SnapshotRef extends VolumeRef {
  readonly commitId: string;
}

/** A group snapshot: one commit of one branch, holding every member volume (subdot) of it. */
export interface GroupSnapshotRef {
  readonly namespace: string;
  readonly dotId: string;
  readonly branchId: string;
  readonly commitId: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function volumeId(v: VolumeRef): string {
  return ['v1', v.namespace, v.dotId, v.branchId, ...(v.subdot ? [v.subdot] : [])].join('/');
}

export function snapshotId(s: SnapshotRef): string {
  return ['s1', s.namespace, s.dotId, s.branchId, s.commitId, ...(s.subdot ? [s.subdot] : [])].join('/');
}

export function parseVolumeId(id: string): VolumeRef | undefined {
  const parts = id.split('/');
  if (parts[0] !== 'v1' || parts.length < 4 || parts.length > 5) return undefined;
  const [, namespace, dotId, branchId, subdot = ''] = parts as [string, string, string, string, string?];
  if (!NAME.test(namespace) || !UUID.test(dotId) || !UUID.test(branchId)) return undefined;
  if (parts.length === 5 && !NAME.test(subdot)) return undefined;
  return { namespace, dotId, branchId, subdot };
}

export function parseSnapshotId(id: string): SnapshotRef | undefined {
  const parts = id.split('/');
  if (parts[0] !== 's1' || parts.length < 5 || parts.length > 6) return undefined;
  const [, namespace, dotId, branchId, commitId, subdot = ''] = parts as [string, string, string, string, string, string?];
  if (!NAME.test(namespace) || !UUID.test(dotId) || !UUID.test(branchId) || !NAME.test(commitId)) return undefined;
  if (parts.length === 6 && !NAME.test(subdot)) return undefined;
  return { namespace, dotId, branchId, commitId, subdot };
}

export function groupSnapshotId(g: GroupSnapshotRef): string {
  return ['g1', g.namespace, g.dotId, g.branchId, g.commitId].join('/');
}

export function parseGroupSnapshotId(id: string): GroupSnapshotRef | undefined {
  const parts = id.split('/');
  if (parts[0] !== 'g1' || parts.length !== 5) return undefined;
  const [, namespace, dotId, branchId, commitId] = parts as [string, string, string, string, string];
  if (!NAME.test(namespace) || !UUID.test(dotId) || !UUID.test(branchId) || !NAME.test(commitId)) return undefined;
  return { namespace, dotId, branchId, commitId };
}

/** The commit metadata keys of the driver's records (packages/csi/src/records.ts says what each holds). */
export const CSI_META = {
  kind: 'csi-kind',
  name: 'csi-name',
  capacity: 'csi-capacity',
  source: 'csi-source',
  subdot: 'csi-subdot',
  snapshot: 'csi-snapshot',
  volume: 'csi-volume',
  group: 'csi-group',
  members: 'csi-members',
  retain: 'retain',
} as const;

export const volumeRecordCommitId = (hash: string) => `csiv-${hash}`;

/**
 * The metadata of a volume record commit (`Commit` metadata, its id included): the volume of
 * CSI name hash `hash`, `capacity` bytes asked, made from `source` (a snapshot or volume id, ""
 * for none), of subdot `subdot` ("" for the default).
 */
export function volumeRecordMetadata(hash: string, capacity: number, source: string, subdot = ''): Record<string, string> {
  return {
    '#commit-id': volumeRecordCommitId(hash),
    [CSI_META.kind]: 'volume',
    [CSI_META.name]: hash,
    [CSI_META.capacity]: String(capacity),
    [CSI_META.source]: source,
    ...(subdot ? { [CSI_META.subdot]: subdot } : {}),
  };
}
