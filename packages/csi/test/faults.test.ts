import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { nameHash } from '../src/ids.ts';
import { CAP, CSI_SKIP, useCsiFixture } from './fixture.ts';

/**
 * Faults and bad input, against the built driver, a real dotmesh-server and a btrfs pool:
 * the driver SIGKILLed at each step of CreateVolume, ControllerPublishVolume, NodeStageVolume
 * and NodePublishVolume (its failpoints), then the call retried as the sidecars and the kubelet
 * do: it completes, with no second dot or branch, no stacked or stale mount, and everything goes
 * with the deletes. Then hostile names, parameters and ids, and another user's volume.
 */

function mountsAt(path: string, mountinfo: string): number {
  return mountinfo.split('\n').filter((l) => l.split(' ')[4] === path).length;
}
const mountCount = async (path: string) => mountsAt(path, await readFile('/proc/self/mountinfo', 'utf8'));

async function rejectsWith(p: Promise<unknown>, code: Status, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: { code?: number; details?: string }) => {
    assert.equal(e.code, code, `${e.code} ${e.details}`);
    if (message) assert.match(e.details ?? '', message);
    return true;
  });
}

describe('the CSI driver under faults and bad input', { skip: CSI_SKIP }, () => {
  const fixture = useCsiFixture('csi-faults');
  const f = () => fixture();

  /** Runs `call` on a driver armed to SIGKILL itself at `failpoint`, then starts a clean one. */
  async function killedAt(failpoint: string, call: () => Promise<unknown>): Promise<void> {
    await f().restartDriver([failpoint]);
    await assert.rejects(call(), (e: { code?: number }) => e.code === Status.UNAVAILABLE || e.code === Status.INTERNAL);
    const exit = await f().driver.process.exited;
    assert.equal(exit.signal, 'SIGKILL', `the driver died at ${failpoint}: ${f().driver.process.output().slice(-2000)}`);
    await f().restartDriver([]);
  }

  const createVolume = (name: string, extra: Record<string, unknown> = {}) =>
    f().csi.Controller.CreateVolume({ name, volume_capabilities: [CAP], secrets: f().secrets, ...extra }) as Promise<{
      volume: { volume_id: string };
    }>;
  const csiDots = async () =>
    (await f().server.admin.call('AllDotsAndBranches', null)).Dots.filter((d) => d.MasterBranch.Name.Name.startsWith('csi-')).map(
      (d) => ({ name: d.MasterBranch.Name.Name, branches: (d.OtherBranches ?? []).map((b) => b.Branch) }),
    );

  for (const fp of ['create-volume.after-dot', 'create-volume.after-branch', 'create-volume.after-record']) {
    test(`CreateVolume killed at ${fp}, retried: one dot, one branch, the same volume every time`, async () => {
      const name = `pvc-${fp}`;
      const hash = nameHash(name);
      await killedAt(fp, () => createVolume(name));
      const first = await createVolume(name);
      const again = await createVolume(name);
      assert.equal(again.volume.volume_id, first.volume.volume_id);
      assert.deepEqual(
        (await csiDots()).filter((d) => d.name === `csi-${hash}`),
        [{ name: `csi-${hash}`, branches: [`csi-${hash}`] }],
      );
      const listed = (await f().csi.Controller.ListVolumes({})) as { entries: Array<{ volume: { volume_id: string } }> };
      assert.equal(listed.entries.filter((e) => e.volume.volume_id === first.volume.volume_id).length, 1);
      await f().csi.Controller.DeleteVolume({ volume_id: first.volume.volume_id, secrets: f().secrets });
      assert.deepEqual(
        (await csiDots()).filter((d) => d.name === `csi-${hash}`),
        [],
        'nothing leaked',
      );
    });
  }

  test('ControllerPublishVolume killed after the attachment, retried: one attachment, gone with the unpublish', async () => {
    const { volume } = await createVolume('pvc-publish-kill');
    const req = {
      volume_id: volume.volume_id,
      node_id: f().nodeId,
      volume_capability: CAP,
      readonly: false,
      secrets: f().secrets,
    };
    await killedAt('controller-publish.after-attach', () => f().csi.Controller.ControllerPublishVolume(req));
    await f().csi.Controller.ControllerPublishVolume(req);
    const branchId = volume.volume_id.split('/')[3]!;
    const uses = await f().server.admin.call('BranchPublications', branchId);
    assert.deepEqual(
      uses.Uses.map((u) => [u.Kind, u.Volume]),
      [['attach', volume.volume_id]],
    );
    await rejectsWith(
      f().csi.Controller.DeleteVolume({ volume_id: volume.volume_id, secrets: f().secrets }),
      Status.FAILED_PRECONDITION,
      /in use/,
    );
    await f().csi.Controller.ControllerUnpublishVolume({
      volume_id: volume.volume_id,
      node_id: f().nodeId,
      secrets: f().secrets,
    });
    assert.deepEqual((await f().server.admin.call('BranchPublications', branchId)).Uses, []);
    await f().csi.Controller.DeleteVolume({ volume_id: volume.volume_id, secrets: f().secrets });
  });

  for (const [stageFp, publishFp] of [
    ['node-stage.after-record', 'node-publish.after-record'],
    ['node-stage.after-mount', 'node-publish.after-mount'],
  ] as const) {
    test(`NodeStage killed at ${stageFp} and NodePublish at ${publishFp}, retried: one mount each, none left after`, async () => {
      const { volume } = await createVolume(`pvc-${publishFp}`);
      const branchId = volume.volume_id.split('/')[3]!;
      await f().csi.Controller.ControllerPublishVolume({
        volume_id: volume.volume_id,
        node_id: f().nodeId,
        volume_capability: CAP,
        readonly: false,
        secrets: f().secrets,
      });
      const staging = join(f().dir, `staging-${publishFp}`);
      const target = join(f().dir, `pods-${publishFp}`, 'mount');
      const stageReq = {
        volume_id: volume.volume_id,
        staging_target_path: staging,
        volume_capability: CAP,
        secrets: f().secrets,
      };
      await killedAt(stageFp, () => f().csi.Node.NodeStageVolume(stageReq));
      await f().csi.Node.NodeStageVolume(stageReq);
      await f().csi.Node.NodeStageVolume(stageReq);
      assert.equal(await mountCount(staging), 1, 'one mount at the staging path');
      const publishReq = {
        volume_id: volume.volume_id,
        staging_target_path: staging,
        target_path: target,
        volume_capability: CAP,
        readonly: false,
        secrets: f().secrets,
      };
      await killedAt(publishFp, () => f().csi.Node.NodePublishVolume(publishReq));
      await f().csi.Node.NodePublishVolume(publishReq);
      assert.equal(await mountCount(target), 1, 'one mount at the target');
      // The pod's writes land in the branch's live data, which a snapshot then holds.
      await writeFile(join(target, 'written-by-pod'), 'data of the pod');
      assert.equal(await readFile(join(staging, 'written-by-pod'), 'utf8'), 'data of the pod');
      const snap = (await f().csi.Controller.CreateSnapshot({
        source_volume_id: volume.volume_id,
        name: `snap-${publishFp}`,
        secrets: f().secrets,
      })) as { snapshot: { snapshot_id: string } };
      const [, , , , commitId] = snap.snapshot.snapshot_id.split('/');
      const snapPath = await f().server.admin.call('MountCommit', { FilesystemId: branchId, CommitId: commitId! });
      assert.equal(await readFile(join(snapPath, '__default__', 'written-by-pod'), 'utf8'), 'data of the pod');

      await f().csi.Node.NodeUnpublishVolume({ volume_id: volume.volume_id, target_path: target });
      await f().csi.Node.NodeUnpublishVolume({ volume_id: volume.volume_id, target_path: target });
      assert.equal(await mountCount(target), 0);
      await assert.rejects(stat(target), { code: 'ENOENT' });
      await f().csi.Node.NodeUnstageVolume({ volume_id: volume.volume_id, staging_target_path: staging });
      assert.equal(await mountCount(staging), 0);
      await f().csi.Controller.ControllerUnpublishVolume({
        volume_id: volume.volume_id,
        node_id: f().nodeId,
        secrets: f().secrets,
      });
      assert.deepEqual((await f().server.admin.call('BranchPublications', branchId)).Uses, [], 'no use left recorded');
      await f().csi.Controller.DeleteVolume({ volume_id: volume.volume_id, secrets: f().secrets });
      await f().csi.Controller.DeleteSnapshot({ snapshot_id: snap.snapshot.snapshot_id, secrets: f().secrets });
      assert.deepEqual(
        (await csiDots()).filter((d) => d.name === `csi-${nameHash(`pvc-${publishFp}`)}`),
        [],
        'nothing leaked',
      );
    });
  }

  test('credentials: none is INVALID_ARGUMENT, a wrong key UNAUTHENTICATED; no key ever reaches the log', async () => {
    await rejectsWith(
      f().csi.Controller.CreateVolume({ name: 'no-secrets: f().secrets', volume_capabilities: [CAP] }),
      Status.INVALID_ARGUMENT,
      /csi\.storage\.k8s\.io/,
    );
    const wrong = 'WRONGKEY-0123456789-never-logged';
    await rejectsWith(
      f().csi.Controller.CreateVolume({ name: 'bad-key', volume_capabilities: [CAP], secrets: { user: 'admin', apiKey: wrong } }),
      Status.UNAUTHENTICATED,
    );
    const out = f().driver.process.output();
    assert.ok(!out.includes(wrong) && !out.includes(f().server.apiKey), 'no API key in the driver log');
  });

  test('hostile names become dot names of hex digits; hostile parameters are refused', async () => {
    for (const name of ['../../../etc/passwd', 'a\nb\u0000c', `${'é'.repeat(60)}`, '/']) {
      const { volume } = await createVolume(name);
      assert.match(volume.volume_id, /^v1\/admin\/[0-9a-f-]{36}\/[0-9a-f-]{36}$/);
      assert.ok((await csiDots()).some((d) => d.name === `csi-${nameHash(name)}`));
      await f().csi.Controller.DeleteVolume({ volume_id: volume.volume_id, secrets: f().secrets });
    }
    for (const parameters of [
      { dotmeshDot: '../../x' },
      { dotmeshDot: 'admin/a/b' },
      { dotmeshNamespace: 'x/y' },
      { unknownKey: 'x' },
      { '../../etc/passwd': 'x' },
    ]) {
      await rejectsWith(createVolume('pvc-params', { parameters }), Status.INVALID_ARGUMENT);
    }
    await rejectsWith(
      createVolume('pvc-block', { volume_capabilities: [{ block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }] }),
      Status.INVALID_ARGUMENT,
      /block/,
    );
    await rejectsWith(
      createVolume('pvc-multi', {
        volume_capabilities: [{ ...CAP, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }],
      }),
      Status.INVALID_ARGUMENT,
      /one node/,
    );
    await rejectsWith(
      createVolume('pvc-huge', { capacity_range: { required_bytes: 2 ** 50, limit_bytes: 0 } }),
      Status.OUT_OF_RANGE,
    );
    assert.deepEqual(
      (await csiDots()).filter((d) => d.name === `csi-${nameHash('pvc-params')}` || d.name === `csi-${nameHash('pvc-huge')}`),
      [],
      'a refused CreateVolume makes nothing',
    );
  });

  test('hostile snapshot and volume ids: nothing found, nothing touched', async () => {
    const dot = '0123abcd-0000-4000-8000-000000000000';
    for (const id of ['s1/admin/../../../x', `s1/admin/${dot}/${dot}/../x`, `s1/admin/${dot}/${dot}/c1`, 'fake']) {
      await rejectsWith(
        createVolume('pvc-from-bad-snap', { volume_content_source: { snapshot: { snapshot_id: id } } }),
        Status.NOT_FOUND,
      );
      await f().csi.Controller.DeleteSnapshot({ snapshot_id: id, secrets: f().secrets });
      const listed = (await f().csi.Controller.ListSnapshots({ snapshot_id: id })) as { entries: unknown[] };
      assert.deepEqual(listed.entries, []);
    }
    for (const id of ['v1/admin/../..', `v1/admin/${dot}/${dot}`, `v1/admin/${dot}/${dot}/../../x`]) {
      await rejectsWith(
        f().csi.Controller.ControllerPublishVolume({
          volume_id: id,
          node_id: f().nodeId,
          volume_capability: CAP,
          readonly: false,
          secrets: f().secrets,
        }),
        Status.NOT_FOUND,
      );
      await rejectsWith(
        f().csi.Node.NodeStageVolume({
          volume_id: id,
          staging_target_path: join(f().dir, 'x'),
          volume_capability: CAP,
          secrets: f().secrets,
        }),
        Status.NOT_FOUND,
      );
      await f().csi.Controller.DeleteVolume({ volume_id: id, secrets: f().secrets });
    }
    await rejectsWith(f().csi.Controller.ListVolumes({ starting_token: '../../x' }), Status.ABORTED);
  });

  test('a volume id of another user’s dot: not found for them, and left as it is', async () => {
    await f().server.admin.call('RegisterNewUser', { Name: 'mallory', Email: 'mallory@example.com', Password: 'mallory-pw-1' });
    const key = await f().server.client('mallory', 'mallory-pw-1').call('GetApiKey', null);
    const theirs = { user: 'mallory', apiKey: key.ApiKey };
    const { volume } = await createVolume('pvc-of-admin');
    const id = volume.volume_id;
    await f().csi.Controller.DeleteVolume({ volume_id: id, secrets: theirs });
    await rejectsWith(
      f().csi.Controller.ControllerPublishVolume({
        volume_id: id,
        node_id: f().nodeId,
        volume_capability: CAP,
        readonly: false,
        secrets: theirs,
      }),
      Status.NOT_FOUND,
    );
    await rejectsWith(
      f().csi.Node.NodeStageVolume({
        volume_id: id,
        staging_target_path: join(f().dir, 'mallory'),
        volume_capability: CAP,
        secrets: theirs,
      }),
      Status.NOT_FOUND,
    );
    await rejectsWith(
      f().csi.Controller.CreateSnapshot({ source_volume_id: id, name: 'steal', secrets: theirs }),
      Status.NOT_FOUND,
    );
    await rejectsWith(
      f().csi.Controller.CreateVolume({
        name: 'steal-clone',
        volume_capabilities: [CAP],
        secrets: theirs,
        volume_content_source: { volume: { volume_id: id } },
      }),
      Status.NOT_FOUND,
    );
    const still = (await f().csi.Controller.ControllerGetVolume({ volume_id: id })) as { volume: { volume_id: string } };
    assert.equal(still.volume.volume_id, id, 'the volume is still there');
    assert.equal(await mountCount(join(f().dir, 'mallory')), 0);
    await f().csi.Controller.DeleteVolume({ volume_id: id, secrets: f().secrets });
  });
});
