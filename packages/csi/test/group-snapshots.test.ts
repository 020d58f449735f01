import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { parseGroupSnapshotId, parseSnapshotId, parseVolumeId } from '../src/ids.ts';
import { CAP, CSI_SKIP, mountVolume, type TestMount, unmountVolume, useCsiFixture } from './fixture.ts';

/**
 * The GroupController on a real dotmesh-server: a group snapshot of two subdots of one dot is
 * one commit of that dot; each member restores its own subdot as it was at that commit; the
 * call is idempotent by name; a group over two dots is refused naming both; deleting the group
 * deletes its commit, and a member alone cannot be deleted.
 */

interface GroupReply extends Record<string, unknown> {
  group_snapshot: {
    group_snapshot_id: string;
    ready_to_use: boolean;
    snapshots: Array<{ snapshot_id: string; source_volume_id: string; group_snapshot_id: string; ready_to_use: boolean }>;
  };
}

const code = (want: Status) => (e: { code?: number }) => e.code === want;

describe('group snapshots of subdots (GroupController)', { skip: CSI_SKIP }, () => {
  const fixture = useCsiFixture('csi-group');
  const f = () => fixture();

  const createIn = async (dot: string, pvc: string) =>
    (
      (await f().csi.Controller.CreateVolume({
        name: `pvc-uid-${pvc}`,
        volume_capabilities: [CAP],
        secrets: f().secrets,
        parameters: { dotmeshDot: dot, 'csi.storage.k8s.io/pvc/namespace': 'default', 'csi.storage.k8s.io/pvc/name': pvc },
      })) as { volume: { volume_id: string } }
    ).volume.volume_id;
  const group = (name: string, ids: string[]) =>
    f().csi.GroupController.CreateVolumeGroupSnapshot({
      name,
      source_volume_ids: ids,
      secrets: f().secrets,
    }) as Promise<GroupReply>;
  const commitsOf = async (name: string) => f().server.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' });

  test('one commit of the dot; each member restores its subdot as it was; idempotent; deleted with the group', async () => {
    const { csi, secrets } = f();
    const caps = (await csi.GroupController.GroupControllerGetCapabilities({})) as { capabilities: unknown[] };
    assert.deepEqual(caps.capabilities, [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' }, type: 'rpc' }]);
    const a = await createIn('admin/grouped', 'db');
    const b = await createIn('admin/grouped', 'logs');
    const mounts = new Map<string, TestMount>([
      [a, await mountVolume(f(), a, 'a')],
      [b, await mountVolume(f(), b, 'b')],
    ]);
    const file = (id: string) => join(mounts.get(id)!.target, 'f');
    await writeFile(file(a), 'a at the group snapshot');
    await writeFile(file(b), 'b at the group snapshot');
    const before = (await commitsOf('grouped')).length;

    const made = (await group('group-1', [a, b])).group_snapshot;
    assert.equal(made.ready_to_use, true);
    const gref = parseGroupSnapshotId(made.group_snapshot_id);
    assert.ok(gref, made.group_snapshot_id);
    assert.deepEqual(
      made.snapshots.map((s) => [s.source_volume_id, s.group_snapshot_id, s.ready_to_use]),
      [
        [a, made.group_snapshot_id, true],
        [b, made.group_snapshot_id, true],
      ],
    );
    const members = made.snapshots.map((s) => parseSnapshotId(s.snapshot_id)!);
    assert.deepEqual(
      members.map((m) => [m.commitId, m.subdot]),
      [
        [gref.commitId, parseVolumeId(a)!.subdot],
        [gref.commitId, parseVolumeId(b)!.subdot],
      ],
      'both members are the one commit, each its own subdot',
    );
    const commits = await commitsOf('grouped');
    assert.equal(commits.length, before + 1, 'one commit for the group');
    assert.equal(commits.at(-1)?.Id, gref.commitId);

    // Idempotent by name: the same group, no second commit; the name with other volumes is refused.
    assert.deepEqual((await group('group-1', [b, a])).group_snapshot, made);
    assert.equal((await commitsOf('grouped')).length, before + 1);
    await assert.rejects(group('group-1', [a]), code(Status.ALREADY_EXISTS));
    const got = (await csi.GroupController.GetVolumeGroupSnapshot({
      group_snapshot_id: made.group_snapshot_id,
      snapshot_ids: made.snapshots.map((s) => s.snapshot_id),
      secrets,
    })) as GroupReply;
    assert.deepEqual(got.group_snapshot, made);
    await assert.rejects(
      csi.GroupController.GetVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, snapshot_ids: [a], secrets }),
      code(Status.INVALID_ARGUMENT),
    );

    // The live data changes; the restores hold the group's moment, each its own subdot.
    await writeFile(file(a), 'a after');
    await writeFile(file(b), 'b after');
    const restored: Array<{ id: string; m: TestMount }> = [];
    for (const [i, s] of made.snapshots.entries()) {
      const r = (await csi.Controller.CreateVolume({
        name: `restored-${i}`,
        volume_capabilities: [CAP],
        secrets,
        volume_content_source: { snapshot: { snapshot_id: s.snapshot_id } },
      })) as { volume: { volume_id: string } };
      restored.push({ id: r.volume.volume_id, m: await mountVolume(f(), r.volume.volume_id, `r${i}`) });
    }
    assert.deepEqual(await Promise.all(restored.map((r) => readFile(join(r.m.target, 'f'), 'utf8'))), [
      'a at the group snapshot',
      'b at the group snapshot',
    ]);

    // Members are listed as snapshots of their volumes; one alone is not deleted.
    const listed = (await csi.Controller.ListSnapshots({ source_volume_id: b })) as {
      entries: Array<{ snapshot: { snapshot_id: string; group_snapshot_id: string } }>;
    };
    assert.deepEqual(
      listed.entries.map((e) => [e.snapshot.snapshot_id, e.snapshot.group_snapshot_id]),
      [[made.snapshots[1]!.snapshot_id, made.group_snapshot_id]],
    );
    await assert.rejects(
      csi.Controller.DeleteSnapshot({ snapshot_id: made.snapshots[0]!.snapshot_id, secrets }),
      (e: { code?: number; details?: string }) =>
        e.code === Status.FAILED_PRECONDITION && /member of the group snapshot/.test(e.details ?? ''),
    );

    // Deleting the group deletes its commit (twice: the second finds nothing to do).
    const ids = made.snapshots.map((s) => s.snapshot_id);
    await assert.rejects(
      csi.GroupController.DeleteVolumeGroupSnapshot({
        group_snapshot_id: made.group_snapshot_id,
        snapshot_ids: [ids[0]],
        secrets,
      }),
      code(Status.INVALID_ARGUMENT),
    );
    for (const r of restored) {
      await unmountVolume(f(), r.id, r.m);
      await csi.Controller.DeleteVolume({ volume_id: r.id, secrets });
    }
    for (let i = 0; i < 2; i++) {
      await csi.GroupController.DeleteVolumeGroupSnapshot({
        group_snapshot_id: made.group_snapshot_id,
        snapshot_ids: ids,
        secrets,
      });
    }
    assert.ok(!(await commitsOf('grouped')).some((c) => c.Id === gref.commitId), 'the group’s commit is gone');
    await assert.rejects(
      csi.GroupController.GetVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, secrets }),
      code(Status.NOT_FOUND),
    );
    for (const [id, m] of mounts) {
      await unmountVolume(f(), id, m);
      await csi.Controller.DeleteVolume({ volume_id: id, secrets });
    }
  });

  test('volumes of two dots are refused naming the volumes and dots; bad input', async () => {
    const { csi, secrets } = f();
    const a = await createIn('admin/first', 'one');
    const b = await createIn('admin/second', 'two');
    const before = (await commitsOf('first')).length;
    await assert.rejects(group('across', [a, b]), (e: { code?: number; details?: string }) => {
      assert.equal(e.code, Status.INVALID_ARGUMENT);
      for (const part of [a, b, 'dot admin/first', 'dot admin/second', 'dotmeshDot', 'VolumeSnapshot of each volume'])
        assert.ok(e.details?.includes(part), `${part} in: ${e.details}`);
      return true;
    });
    assert.equal((await commitsOf('first')).length, before, 'nothing committed');
    // A plain volume (its own dot) with a subdot volume: also two dots.
    const plain = (
      (await csi.Controller.CreateVolume({ name: 'plain', volume_capabilities: [CAP], secrets })) as {
        volume: { volume_id: string };
      }
    ).volume.volume_id;
    await assert.rejects(group('mixed', [a, plain]), code(Status.INVALID_ARGUMENT));

    const G = csi.GroupController;
    await assert.rejects(G.CreateVolumeGroupSnapshot({ source_volume_ids: [a], secrets }), code(Status.INVALID_ARGUMENT));
    await assert.rejects(
      G.CreateVolumeGroupSnapshot({ name: 'g', source_volume_ids: [], secrets }),
      code(Status.INVALID_ARGUMENT),
    );
    await assert.rejects(group('twice', [a, a]), code(Status.INVALID_ARGUMENT));
    await assert.rejects(group('hostile', [a, 'v1/../x/y']), code(Status.NOT_FOUND));
    await assert.rejects(
      G.CreateVolumeGroupSnapshot({ name: 'p', source_volume_ids: [a], secrets, parameters: { colour: 'red' } }),
      code(Status.INVALID_ARGUMENT),
    );
    await assert.rejects(
      G.CreateVolumeGroupSnapshot({ name: 'nosecrets', source_volume_ids: [a] }),
      code(Status.INVALID_ARGUMENT),
    );
    await assert.rejects(G.GetVolumeGroupSnapshot({ group_snapshot_id: 'g1/../x', secrets }), code(Status.NOT_FOUND));
    await G.DeleteVolumeGroupSnapshot({ group_snapshot_id: 'not-ours', secrets });

    for (const id of [a, b, plain]) await csi.Controller.DeleteVolume({ volume_id: id, secrets });
  });
});
