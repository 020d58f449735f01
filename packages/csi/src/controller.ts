import { volumeRecordMetadata } from '@dotmesh/core';
import type { DotmeshClient } from '@dotmesh/rpc';
import { status as Status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { requireCapability, requireSupported, unsupported } from './capabilities.ts';
import { branchOf, commitOnce, deleteDriverDotIfUnused, idempotent } from './controller-steps.ts';
import type { Clients } from './credentials.ts';
import type { CreateVolumeRequest, PagedRequest, Secrets, VolumeCapability } from './csi-types.ts';
import { type Failpoint, NO_FAILPOINTS } from './failpoints.ts';
import { everySnapshot, groupAmong } from './group-records.ts';
import { CsiError, invalid, notFound } from './grpc-errors.ts';
import { groupSnapshotId, nameHash, parseSnapshotId, parseVolumeId } from './ids.ts';
import { page } from './paging.ts';
import {
  allVolumes,
  clonePointCommitId,
  findSnapshot,
  findVolume,
  META,
  snapshotCommitId,
  snapshotMessage,
  type VolumeRecord,
  volumeBranchName,
  volumeDotName,
  volumeMessage,
  volumeRecordOf,
} from './records.ts';
import { type Log, unary } from './unary.ts';
import { parseVolumeParameters, type VolumeParameters } from './volume-parameters.ts';

export const CONTROLLER_CAPABILITIES = [
  'CREATE_DELETE_VOLUME',
  'PUBLISH_UNPUBLISH_VOLUME',
  'LIST_VOLUMES',
  'GET_CAPACITY',
  'CREATE_DELETE_SNAPSHOT',
  'LIST_SNAPSHOTS',
  'CLONE_VOLUME',
  'PUBLISH_READONLY',
  'GET_VOLUME',
  'GET_VOLUME_HEALTH',
  'SINGLE_NODE_MULTI_WRITER',
] as const;

/** The volume record of a volume id, or undefined when there is no such volume. */
async function volumeOf(client: DotmeshClient, id: string): Promise<VolumeRecord | undefined> {
  const ref = parseVolumeId(id);
  if (!ref || !(await branchOf(client, ref))) return undefined;
  const commits = await client.call('CommitsById', ref.branchId);
  for (const c of commits) {
    if (c.Metadata[META.kind] !== 'volume' || (c.Metadata[META.subdot] ?? '') !== ref.subdot) continue;
    const b = await client.call('BranchById', ref.branchId);
    const r = volumeRecordOf({
      Id: c.Id,
      FilesystemId: ref.branchId,
      DotId: ref.dotId,
      Namespace: ref.namespace,
      Name: b.Name,
      Branch: b.Branch,
      Metadata: c.Metadata,
    });
    if (r && r.id === id) return r;
  }
  return undefined;
}

/** The branch of a volume id the caller may use, else NOT_FOUND naming `call`. */
async function requireVolumeBranch(client: DotmeshClient, id: string, call: string) {
  const ref = parseVolumeId(id);
  const b = ref ? await branchOf(client, ref) : undefined;
  if (!ref || !b) throw notFound(`${call}: no volume ${id.slice(0, 300)}`);
  return { ref, b };
}

/**
 * The Controller service: volumes are branches (or subdots of one branch), snapshots retained
 * commits, clones branches of a commit of the source's live data, publishing a move of the
 * branch to the node (AttachBranch). See docs/kubernetes.md.
 */
export function controllerService(
  clients: Clients,
  log: Log,
  failpoint: Failpoint = NO_FAILPOINTS,
): UntypedServiceImplementation {
  const createVolume = async (req: CreateVolumeRequest) => {
    if (!req.name) throw invalid('CreateVolume: name is required');
    requireSupported(req.volume_capabilities, 'CreateVolume');
    const required = req.capacity_range?.required_bytes ?? 0;
    const limit = req.capacity_range?.limit_bytes ?? 0;
    if (required < 0 || limit < 0) throw invalid('CreateVolume: capacity cannot be negative');
    if (limit > 0 && required > limit) throw invalid('CreateVolume: required_bytes is above limit_bytes');
    const params = parseVolumeParameters(req.parameters);
    const client = clients.forSecrets(req.secrets, 'CreateVolume');
    const hash = nameHash(req.name);
    const sourceId = req.volume_content_source?.snapshot?.snapshot_id ?? req.volume_content_source?.volume?.volume_id ?? '';

    const existing = await findVolume(client, hash);
    if (existing) return { volume: volumeMessage(sameVolume(existing, required, sourceId)) };

    if (required > 0) {
      const capacity = await client.call('Capacity', null);
      if (required > capacity.FreeBytes) {
        throw new CsiError(
          Status.OUT_OF_RANGE,
          `CreateVolume: ${required} bytes asked, the smallest pool has ${capacity.FreeBytes} bytes free`,
        );
      }
    }
    const where = await placeVolume(client, req, params, hash, sourceId);
    failpoint('create-volume.after-dot');
    if (where.fromCommit !== '') {
      await idempotent(
        () =>
          client.call('Branch', {
            Namespace: where.namespace,
            Name: where.dotName,
            SourceBranch: where.fromBranch,
            NewBranchName: where.branch,
            SourceCommitId: where.fromCommit,
          }),
        'BRANCH_EXISTS',
      );
    }
    failpoint('create-volume.after-branch');
    await recordVolume(client, where, hash, required, sourceId);
    failpoint('create-volume.after-record');
    const created = await findVolume(client, hash);
    if (!created)
      throw new CsiError(Status.INTERNAL, `CreateVolume: the volume record of ${req.name} is not found after its commit`);
    return { volume: volumeMessage(created) };
  };

  const deleteVolume = async (req: { volume_id: string; secrets: Secrets }) => {
    if (!req.volume_id) throw invalid('DeleteVolume: volume_id is required');
    const ref = parseVolumeId(req.volume_id);
    if (!ref) return {}; // not an id of this driver: nothing to delete
    const client = clients.forSecrets(req.secrets, 'DeleteVolume');
    const b = await branchOf(client, ref);
    if (!b) return {};
    const commits = await client.call('CommitsById', ref.branchId);
    const record = commits.find((c) => c.Metadata[META.kind] === 'volume' && (c.Metadata[META.subdot] ?? '') === ref.subdot);
    if (ref.subdot !== '') {
      await client.call('DeleteSubdot', { Namespace: b.Namespace, Name: b.Name, Branch: b.Branch, Subdot: ref.subdot });
      if (record)
        await idempotent(
          () => client.call('DeleteCommit', { FilesystemId: ref.branchId, CommitId: record.Id }),
          'COMMIT_NOT_FOUND',
        );
      return {};
    }
    if (b.Branch === '')
      throw new CsiError(Status.FAILED_PRECONDITION, 'DeleteVolume: the master branch of a dot is not a volume of this driver');
    await client.call('DeleteBranch', { Namespace: b.Namespace, Name: b.Name, Branch: b.Branch });
    await deleteDriverDotIfUnused(client, b, ref.dotId);
    return {};
  };

  const validate = async (req: {
    volume_id: string;
    volume_capabilities: VolumeCapability[];
    volume_context: Record<string, string>;
    parameters: Record<string, string>;
    secrets: Secrets;
  }) => {
    if (!req.volume_id) throw invalid('ValidateVolumeCapabilities: volume_id is required');
    if (!req.volume_capabilities?.length) throw invalid('ValidateVolumeCapabilities: volume capabilities are required');
    const client = clients.forSecretsOrOwn(req.secrets, 'ValidateVolumeCapabilities');
    if (!(await volumeOf(client, req.volume_id))) throw notFound(`no volume ${req.volume_id}`);
    const why = req.volume_capabilities.map(unsupported).find((w) => w !== undefined);
    if (why) return { message: why };
    return {
      confirmed: {
        volume_context: req.volume_context,
        volume_capabilities: req.volume_capabilities,
        parameters: req.parameters,
      },
    };
  };

  const listVolumes = async (req: PagedRequest) => {
    const volumes = (await allVolumes(clients.own)).map((v) => ({ ...v, id: v.id }));
    const p = page(volumes, req.max_entries, req.starting_token, (t) => parseVolumeId(t) !== undefined);
    return { entries: p.entries.map((v) => ({ volume: volumeMessage(v) })), next_token: p.nextToken };
  };

  const getVolume = async (req: { volume_id: string }) => {
    if (!req.volume_id) throw invalid('ControllerGetVolume: volume_id is required');
    const v = await volumeOf(clients.own, req.volume_id);
    if (!v) throw notFound(`no volume ${req.volume_id}`);
    const uses = await clients.own.call('BranchPublications', v.ref.branchId);
    const attached = uses.Uses.some((u) => u.Kind === 'attach' && u.Volume === v.id);
    return { volume: volumeMessage(v), status: { published_node_ids: attached ? [uses.Node] : [] } };
  };

  const volumeHealth = async (req: { volume_id: string }) => {
    if (!req.volume_id) throw invalid('ControllerGetVolumeHealth: volume_id is required');
    const v = await volumeOf(clients.own, req.volume_id);
    if (!v) throw notFound(`no volume ${req.volume_id}`);
    const b = await clients.own.call('BranchById', v.ref.branchId);
    const health_statuses =
      b.Master === ''
        ? [{ status: 'INACCESSIBLE', reason: 'NoMaster', message: 'no live node masters the branch of this volume' }]
        : [];
    return { volume_health: { volume_id: v.id, health_statuses } };
  };

  const getCapacity = async (req: { volume_capabilities: VolumeCapability[] }) => {
    if (req.volume_capabilities?.some((c) => unsupported(c) !== undefined)) return { available_capacity: 0 };
    const c = await clients.own.call('Capacity', null);
    return { available_capacity: c.FreeBytes };
  };

  const publish = async (req: {
    volume_id: string;
    node_id: string;
    volume_capability: VolumeCapability | null;
    readonly: boolean;
    secrets: Secrets;
  }) => {
    if (!req.volume_id) throw invalid('ControllerPublishVolume: volume_id is required');
    if (!req.node_id) throw invalid('ControllerPublishVolume: node_id is required');
    requireCapability(req.volume_capability, 'ControllerPublishVolume');
    const ref = parseVolumeId(req.volume_id);
    if (!ref) throw notFound(`no volume ${req.volume_id}`);
    const client = clients.forSecrets(req.secrets, 'ControllerPublishVolume');
    if (!(await branchOf(client, ref))) throw notFound(`no volume ${req.volume_id}`);
    await client.call('AttachBranch', {
      FilesystemId: ref.branchId,
      Node: req.node_id,
      Volume: req.volume_id,
      ReadOnly: req.readonly,
    });
    failpoint('controller-publish.after-attach');
    return { publish_context: {} };
  };

  const unpublish = async (req: { volume_id: string; node_id: string; secrets: Secrets }) => {
    if (!req.volume_id) throw invalid('ControllerUnpublishVolume: volume_id is required');
    const ref = parseVolumeId(req.volume_id);
    if (!ref) return {};
    const client = clients.forSecretsOrOwn(req.secrets, 'ControllerUnpublishVolume');
    await idempotent(
      () => client.call('DetachBranch', { FilesystemId: ref.branchId, Node: req.node_id, Volume: req.volume_id }),
      'DOT_NOT_FOUND',
    );
    return {};
  };

  const createSnapshot = async (req: { source_volume_id: string; name: string; secrets: Secrets }) => {
    if (!req.name) throw invalid('CreateSnapshot: name is required');
    if (!req.source_volume_id) throw invalid('CreateSnapshot: source_volume_id is required');
    const client = clients.forSecrets(req.secrets, 'CreateSnapshot');
    const hash = nameHash(req.name);
    const existing = await findSnapshot(client, hash);
    if (existing) {
      if (existing.sourceVolumeId !== req.source_volume_id) {
        throw new CsiError(Status.ALREADY_EXISTS, `CreateSnapshot: snapshot ${req.name} exists, of another volume`);
      }
      return { snapshot: snapshotMessage(existing) };
    }
    const { ref, b } = await requireVolumeBranch(client, req.source_volume_id, 'CreateSnapshot');
    await commitOnce(client, b, `Kubernetes snapshot ${req.name.slice(0, 200)}`, {
      '#commit-id': snapshotCommitId(hash),
      [META.retain]: 'true',
      [META.kind]: 'snapshot',
      [META.snapshot]: hash,
      [META.volume]: req.source_volume_id,
      ...(ref.subdot ? { [META.subdot]: ref.subdot } : {}),
    });
    const made = await findSnapshot(client, hash);
    if (!made) throw new CsiError(Status.INTERNAL, `CreateSnapshot: snapshot ${req.name} is not found after its commit`);
    return { snapshot: snapshotMessage(made) };
  };

  const deleteSnapshot = async (req: { snapshot_id: string; secrets: Secrets }) => {
    if (!req.snapshot_id) throw invalid('DeleteSnapshot: snapshot_id is required');
    const ref = parseSnapshotId(req.snapshot_id);
    if (!ref) return {};
    const client = clients.forSecrets(req.secrets, 'DeleteSnapshot');
    const b = await branchOf(client, ref);
    if (!b) return {};
    const group = groupAmong(await client.call('CommitsById', ref.branchId), ref);
    if (group) {
      throw new CsiError(
        Status.FAILED_PRECONDITION,
        `DeleteSnapshot: snapshot ${req.snapshot_id} is a member of the group snapshot ${groupSnapshotId(ref)}: it is deleted with the group (delete the VolumeGroupSnapshot)`,
      );
    }
    await idempotent(
      () => client.call('DeleteCommit', { FilesystemId: ref.branchId, CommitId: ref.commitId }),
      'COMMIT_NOT_FOUND',
    );
    await deleteDriverDotIfUnused(client, b, ref.dotId);
    return {};
  };

  const listSnapshots = async (req: PagedRequest & { source_volume_id: string; snapshot_id: string; secrets: Secrets }) => {
    const client = clients.forSecretsOrOwn(req.secrets, 'ListSnapshots');
    const snapshots = (await everySnapshot(client)).filter(
      (s) =>
        (req.snapshot_id === '' || s.id === req.snapshot_id) &&
        (req.source_volume_id === '' || s.sourceVolumeId === req.source_volume_id),
    );
    const p = page(snapshots, req.max_entries, req.starting_token, (t) => parseSnapshotId(t) !== undefined);
    return { entries: p.entries.map((s) => ({ snapshot: snapshotMessage(s) })), next_token: p.nextToken };
  };

  return {
    CreateVolume: unary('CreateVolume', createVolume, log, {
      DOT_NOT_FOUND: Status.NOT_FOUND,
      COMMIT_NOT_FOUND: Status.NOT_FOUND,
    }),
    DeleteVolume: unary('DeleteVolume', deleteVolume, log),
    ValidateVolumeCapabilities: unary('ValidateVolumeCapabilities', validate, log),
    ListVolumes: unary('ListVolumes', listVolumes, log),
    ControllerGetVolume: unary('ControllerGetVolume', getVolume, log),
    ControllerGetVolumeHealth: unary('ControllerGetVolumeHealth', volumeHealth, log),
    GetCapacity: unary('GetCapacity', getCapacity, log),
    ControllerPublishVolume: unary('ControllerPublishVolume', publish, log, {
      CONFLICT: Status.ALREADY_EXISTS,
      NODE_NOT_FOUND: Status.NOT_FOUND,
      DOT_NOT_FOUND: Status.NOT_FOUND,
    }),
    ControllerUnpublishVolume: unary('ControllerUnpublishVolume', unpublish, log),
    CreateSnapshot: unary('CreateSnapshot', createSnapshot, log),
    DeleteSnapshot: unary('DeleteSnapshot', deleteSnapshot, log),
    ListSnapshots: unary('ListSnapshots', listSnapshots, log),
    ControllerGetCapabilities: unary(
      'ControllerGetCapabilities',
      async () => ({ capabilities: CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) }),
      log,
    ),
  };
}

/** ALREADY_EXISTS unless a retried CreateVolume asks for what the existing volume is. */
function sameVolume(existing: VolumeRecord, required: number, sourceId: string): VolumeRecord {
  if (existing.capacity !== required) {
    throw new CsiError(Status.ALREADY_EXISTS, `CreateVolume: the volume exists with a capacity of ${existing.capacity} bytes`);
  }
  if (existing.source !== sourceId) {
    throw new CsiError(Status.ALREADY_EXISTS, 'CreateVolume: the volume exists with another content source');
  }
  return existing;
}

interface Placement {
  readonly namespace: string;
  readonly dotName: string;
  /** The branch and commit the volume's branch is made from; "" when it exists already. */
  readonly fromBranch: string;
  readonly fromCommit: string;
  /** "" for master. */
  readonly branch: string;
  readonly subdot: string;
}

/**
 * Where a new volume goes, making what it needs on the way (each step is found done on a retry):
 * from a snapshot, a branch of that commit in the snapshot's dot; from a volume, a branch of a
 * commit of the source's live data in its dot; from nothing, the dot `csi-<hash>` (its master
 * branch keeps only the initial commit) and a branch of it; for a `dotmeshDot` class, a subdot
 * of that dot's master branch.
 */
async function placeVolume(
  client: DotmeshClient,
  req: CreateVolumeRequest,
  params: VolumeParameters,
  hash: string,
  sourceId: string,
): Promise<Placement> {
  const branch = volumeBranchName(hash);
  if (params.dot) {
    if (req.volume_content_source?.snapshot || req.volume_content_source?.volume) {
      throw invalid('CreateVolume: volumes of a dotmeshDot class start empty (no snapshot or volume source)');
    }
    const { namespace, name } = params.dot;
    await idempotent(() => client.call('Create', { Namespace: namespace, Name: name }), 'DOT_EXISTS');
    return {
      namespace,
      dotName: name,
      fromBranch: '',
      fromCommit: '',
      branch: '',
      subdot: params.pvcSubdot ?? volumeBranchName(hash),
    };
  }
  if (req.volume_content_source?.snapshot) {
    const ref = parseSnapshotId(sourceId);
    const b = ref ? await branchOf(client, ref) : undefined;
    if (!ref || !b) throw notFound(`CreateVolume: no snapshot ${sourceId}`);
    return {
      namespace: b.Namespace,
      dotName: b.Name,
      fromBranch: b.Branch || 'master',
      fromCommit: ref.commitId,
      branch,
      subdot: ref.subdot,
    };
  }
  if (req.volume_content_source?.volume) {
    const { ref, b } = await requireVolumeBranch(client, sourceId, 'CreateVolume');
    const commit = clonePointCommitId(hash);
    await commitOnce(client, b, `Kubernetes clone ${req.name.slice(0, 200)}`, {
      '#commit-id': commit,
      [META.kind]: 'clone-point',
    });
    return {
      namespace: b.Namespace,
      dotName: b.Name,
      fromBranch: b.Branch || 'master',
      fromCommit: commit,
      branch,
      subdot: ref.subdot,
    };
  }
  const namespace = params.namespace ?? (await client.call('CurrentUser', null)).Name;
  const dotName = volumeDotName(hash);
  await idempotent(() => client.call('Create', { Namespace: namespace, Name: dotName }), 'DOT_EXISTS');
  const [initial] = await client.call('Commits', { Namespace: namespace, Name: dotName, Branch: '' });
  if (!initial) throw new CsiError(Status.INTERNAL, `dot ${namespace}/${dotName} has no initial commit`);
  return { namespace, dotName, fromBranch: 'master', fromCommit: initial.Id, branch, subdot: '' };
}

async function recordVolume(client: DotmeshClient, where: Placement, hash: string, capacity: number, sourceId: string) {
  await commitOnce(
    client,
    { Namespace: where.namespace, Name: where.dotName, Branch: where.branch },
    'Kubernetes volume',
    volumeRecordMetadata(hash, capacity, sourceId, where.subdot),
  );
}
