/**
 * The parts of CSI messages (spec v1.13.0, as @grpc/proto-loader decodes them with the options
 * of proto.ts: snake_case fields, defaults filled in, enums as names, oneofs named) that the
 * driver reads or writes. Only what it uses is typed.
 */
export type AccessModeName =
  | 'UNKNOWN'
  | 'SINGLE_NODE_WRITER'
  | 'SINGLE_NODE_READER_ONLY'
  | 'MULTI_NODE_READER_ONLY'
  | 'MULTI_NODE_SINGLE_WRITER'
  | 'MULTI_NODE_MULTI_WRITER'
  | 'SINGLE_NODE_SINGLE_WRITER'
  | 'SINGLE_NODE_MULTI_WRITER';

export interface VolumeCapability {
  readonly block?: object | null;
  readonly mount?: { readonly fs_type: string; readonly mount_flags: readonly string[] } | null;
  readonly access_mode?: { readonly mode: AccessModeName } | null;
  readonly access_type?: 'block' | 'mount';
}

export type Secrets = Readonly<Record<string, string>>;

export interface CreateVolumeRequest {
  readonly name: string;
  readonly capacity_range?: { readonly required_bytes: number; readonly limit_bytes: number } | null;
  readonly volume_capabilities: readonly VolumeCapability[];
  readonly parameters: Readonly<Record<string, string>>;
  readonly secrets: Secrets;
  readonly volume_content_source?: {
    readonly snapshot?: { readonly snapshot_id: string } | null;
    readonly volume?: { readonly volume_id: string } | null;
    readonly type?: 'snapshot' | 'volume';
  } | null;
  readonly mutable_parameters?: Readonly<Record<string, string>>;
}

export interface Volume {
  readonly capacity_bytes: number;
  readonly volume_id: string;
  readonly volume_context: Record<string, string>;
  readonly content_source?:
    | { readonly snapshot: { readonly snapshot_id: string } }
    | { readonly volume: { readonly volume_id: string } };
}

export interface Snapshot {
  readonly size_bytes: number;
  readonly snapshot_id: string;
  readonly source_volume_id: string;
  readonly creation_time: { readonly seconds: number; readonly nanos: number };
  readonly ready_to_use: boolean;
  /** "" unless the snapshot is a member of a group snapshot (then deleted only with it). */
  readonly group_snapshot_id: string;
}

export interface VolumeGroupSnapshot {
  readonly group_snapshot_id: string;
  readonly snapshots: readonly Snapshot[];
  readonly creation_time: { readonly seconds: number; readonly nanos: number };
  readonly ready_to_use: boolean;
}

export interface PagedRequest {
  readonly max_entries: number;
  readonly starting_token: string;
}
