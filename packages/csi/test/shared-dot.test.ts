import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { parseVolumeId } from '../src/ids.ts';
import { CAP, CSI_SKIP, mountVolume, type TestMount, unmountVolume, useCsiFixture } from './fixture.ts';

/**
 * A StorageClass with `dotmeshDot: <ns>/<name>`: every volume is a subdot of that dot's master
 * branch, named from its PVC; their data stays apart; deleting one removes its subdot only, and
 * not while it is mounted.
 */

describe('volumes as subdots of one dot (dotmeshDot)', { skip: CSI_SKIP }, () => {
  const fixture = useCsiFixture('csi-shared');
  const f = () => fixture();

  const create = (pvc: string) =>
    f().csi.Controller.CreateVolume({
      name: `pvc-uid-${pvc}`,
      volume_capabilities: [CAP],
      secrets: f().secrets,
      parameters: {
        dotmeshDot: 'admin/shared',
        'csi.storage.k8s.io/pvc/namespace': 'default',
        'csi.storage.k8s.io/pvc/name': pvc,
      },
    }) as Promise<{ volume: { volume_id: string } }>;

  const mount = (id: string, name: string) => mountVolume(f(), id, name);
  const unmount = (id: string, m: TestMount) => unmountVolume(f(), id, m);

  test('two PVCs: two subdots of admin/shared, their data apart; one deleted, the other intact', async () => {
    const a = (await create('data-a')).volume.volume_id;
    const b = (await create('data-b')).volume.volume_id;
    assert.equal((await create('data-a')).volume.volume_id, a, 'idempotent');
    const [ra, rb] = [parseVolumeId(a)!, parseVolumeId(b)!];
    assert.equal(ra.subdot, 'default-data-a');
    assert.equal(rb.subdot, 'default-data-b');
    assert.equal(ra.branchId, rb.branchId, 'one branch');
    const dotId = await f().server.admin.call('Lookup', { Namespace: 'admin', Name: 'shared', Branch: '' });
    assert.equal(ra.branchId, dotId, 'the master branch of admin/shared');

    const ma = await mount(a, 'a');
    const mb = await mount(b, 'b');
    await writeFile(join(ma.target, 'f'), 'written to a');
    await writeFile(join(mb.target, 'f'), 'written to b');
    assert.equal(await readFile(join(ma.target, 'f'), 'utf8'), 'written to a');
    const live = await f().server.admin.call('PublishBranch', {
      FilesystemId: dotId,
      Subdot: '__root__',
      Volume: 'probe',
      Target: '/probe',
      ReadOnly: true,
    });
    await f().server.admin.call('UnpublishBranch', { FilesystemId: dotId, Target: '/probe' });
    assert.equal(await readFile(join(live, 'default-data-b', 'f'), 'utf8'), 'written to b');

    // Not while mounted; then only its subdot goes.
    await assert.rejects(
      f().csi.Controller.DeleteVolume({ volume_id: a, secrets: f().secrets }),
      (e: { code?: number }) => e.code === Status.FAILED_PRECONDITION,
    );
    await unmount(a, ma);
    await f().csi.Controller.DeleteVolume({ volume_id: a, secrets: f().secrets });
    const left = await readdir(live);
    assert.ok(!left.includes('default-data-a') && left.includes('default-data-b'), left.join(', '));
    assert.equal(await readFile(join(mb.target, 'f'), 'utf8'), 'written to b');
    const listed = (await f().csi.Controller.ListVolumes({})) as { entries: Array<{ volume: { volume_id: string } }> };
    assert.deepEqual(
      listed.entries.map((e) => e.volume.volume_id).filter((id) => id === a || id === b),
      [b],
    );
    await unmount(b, mb);
    await f().csi.Controller.DeleteVolume({ volume_id: b, secrets: f().secrets });
    assert.equal(
      (await f().server.admin.call('Exists', { Namespace: 'admin', Name: 'shared', Branch: '' })) !== '',
      true,
      'the dot stays: it is the user’s',
    );
  });

  test('a dotmeshDot volume starts empty: a snapshot or volume source is refused', async () => {
    await assert.rejects(
      f().csi.Controller.CreateVolume({
        name: 'from-source',
        volume_capabilities: [CAP],
        secrets: f().secrets,
        parameters: { dotmeshDot: 'admin/shared' },
        volume_content_source: {
          volume: {
            volume_id: `v1/admin/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}`,
          },
        },
      }),
      (e: { code?: number }) => e.code === Status.INVALID_ARGUMENT,
    );
  });
});
