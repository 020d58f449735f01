import type { DotmeshClient } from '@dotmesh/rpc';
import { status as Status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { branchOf, commitOnce, deleteDriverDotIfUnused, idempotent } from './controller-steps.ts';
import type { Clients } from './credentials.ts';
import type { Secrets } from './csi-types.ts';
import { checkGroupParameters, checkMemberIds, type GroupVolume, oneBranch, parseGroupVolumeIds } from './group-members.ts';
import {
  findGroup,
  GROUP_KIND,
  type GroupRecord,
  groupAmong,
  groupCommitId,
  groupMessage,
  memberRecords,
} from './group-records.ts';
import { CsiError, invalid, notFound } from './grpc-errors.ts';
import { nameHash, parseGroupSnapshotId } from './ids.ts';
import { META } from './records.ts';
import { type Log, unary } from './unary.ts';

export const GROUP_CONTROLLER_CAPABILITIES = ['CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT'] as const;

/**
 * The GroupController service: a group snapshot of volumes that are subdots of one branch (a
 * `dotmeshDot` StorageClass's volumes) is ONE retained commit of that branch, made through the
 * server's Commit like any commit, so every member is taken at the same instant (one btrfs
 * snapshot of the branch); each member snapshot id restores its own subdot at that commit.
 * Idempotent by name (the commit id is derived from it). Deleting the group deletes its commit;
 * a member alone is not deleted (DeleteSnapshot refuses it: the spec's group_snapshot_id).
 */
export function groupControllerService(clients: Clients, log: Log): UntypedServiceImplementation {
  const create = async (req: { name: string; source_volume_ids: string[]; secrets: Secrets; parameters: Secrets }) => {
    if (!req.name) throw invalid('CreateVolumeGroupSnapshot: name is required');
    checkGroupParameters(req.parameters);
    const asked = parseGroupVolumeIds(req.source_volume_ids);
    const client = clients.forSecrets(req.secrets, 'CreateVolumeGroupSnapshot');
    const hash = nameHash(req.name);
    const existing = await findGroup(client, hash);
    if (existing) return { group_snapshot: groupMessage(sameGroup(existing, req.name, req.source_volume_ids)) };

    const volumes: GroupVolume[] = [];
    for (const { id, ref } of asked) {
      const b = await branchOf(client, ref);
      if (!b) throw notFound(`CreateVolumeGroupSnapshot: no volume ${id.slice(0, 300)}`);
      volumes.push({ id, ref, dot: `${b.Namespace}/${b.Name}`, branch: b.Branch });
    }
    const group = oneBranch(volumes);
    const b = await client.call('BranchById', group.branchId);
    await commitOnce(client, b, `Kubernetes group snapshot ${req.name.slice(0, 200)}`, {
      '#commit-id': groupCommitId(hash),
      [META.retain]: 'true',
      [META.kind]: GROUP_KIND,
      [META.group]: hash,
      [META.members]: JSON.stringify(group.subdots),
    });
    const made = await findGroup(client, hash);
    if (!made) throw new CsiError(Status.INTERNAL, `CreateVolumeGroupSnapshot: group ${req.name} is not found after its commit`);
    return { group_snapshot: groupMessage(made) };
  };

  /** The group of an id the caller may see, or undefined (no such branch, commit or group). */
  const groupOf = async (client: DotmeshClient, id: string): Promise<GroupRecord | undefined> => {
    const ref = parseGroupSnapshotId(id);
    if (!ref || !(await branchOf(client, ref))) return undefined;
    return groupAmong(await client.call('CommitsById', ref.branchId), ref);
  };

  const get = async (req: { group_snapshot_id: string; snapshot_ids: string[]; secrets: Secrets }) => {
    if (!req.group_snapshot_id) throw invalid('GetVolumeGroupSnapshot: group_snapshot_id is required');
    const client = clients.forSecretsOrOwn(req.secrets, 'GetVolumeGroupSnapshot');
    const g = await groupOf(client, req.group_snapshot_id);
    if (!g) throw notFound(`GetVolumeGroupSnapshot: no group snapshot ${req.group_snapshot_id.slice(0, 300)}`);
    checkMemberIds('GetVolumeGroupSnapshot', g.id, memberIds(g), req.snapshot_ids);
    return { group_snapshot: groupMessage(g) };
  };

  const remove = async (req: { group_snapshot_id: string; snapshot_ids: string[]; secrets: Secrets }) => {
    if (!req.group_snapshot_id) throw invalid('DeleteVolumeGroupSnapshot: group_snapshot_id is required');
    const ref = parseGroupSnapshotId(req.group_snapshot_id);
    if (!ref) return {}; // not an id of this driver: nothing to delete
    const client = clients.forSecrets(req.secrets, 'DeleteVolumeGroupSnapshot');
    const b = await branchOf(client, ref);
    if (!b) return {};
    const g = groupAmong(await client.call('CommitsById', ref.branchId), ref);
    if (!g) return {};
    checkMemberIds('DeleteVolumeGroupSnapshot', g.id, memberIds(g), req.snapshot_ids);
    await idempotent(
      () => client.call('DeleteCommit', { FilesystemId: ref.branchId, CommitId: ref.commitId }),
      'COMMIT_NOT_FOUND',
    );
    await deleteDriverDotIfUnused(client, b, ref.dotId);
    return {};
  };

  return {
    GroupControllerGetCapabilities: unary(
      'GroupControllerGetCapabilities',
      async () => ({ capabilities: GROUP_CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) }),
      log,
    ),
    CreateVolumeGroupSnapshot: unary('CreateVolumeGroupSnapshot', create, log),
    GetVolumeGroupSnapshot: unary('GetVolumeGroupSnapshot', get, log),
    DeleteVolumeGroupSnapshot: unary('DeleteVolumeGroupSnapshot', remove, log),
  };
}

const memberIds = (g: GroupRecord) => memberRecords(g).map((s) => s.id);

/** ALREADY_EXISTS unless a retried CreateVolumeGroupSnapshot asks for the same volumes. */
function sameGroup(existing: GroupRecord, name: string, asked: readonly string[]): GroupRecord {
  const have = memberRecords(existing).map((s) => s.sourceVolumeId);
  if (have.length !== asked.length || !asked.every((id) => have.includes(id))) {
    throw new CsiError(
      Status.ALREADY_EXISTS,
      `CreateVolumeGroupSnapshot: group snapshot ${name.slice(0, 200)} exists, of other volumes (${have.join(', ')})`,
    );
  }
  return existing;
}
