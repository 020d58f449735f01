import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  findK8sTools,
  isCI,
  listLoopDevicesFor,
  makeTempDir,
  mountsUnder,
  runCsiSanity,
  skipUnless,
  startCloudCsi,
  unmountUnder,
} from '@dotmesh/testkit';

/**
 * csi-sanity v5.6.0 against the test-only cloud driver, controller and node plugin on one
 * socket (node `n1` in zone `zone-a` of a two-zone cloud): every spec it runs passes, with
 * topology, attach (ControllerPublish) and expansion exercised; nothing is left mounted or
 * attached.
 */
const tools = findK8sTools();
const skip = skipUnless(['root', 'losetup']) || (tools.ok || isCI() ? false : tools.reason);

/** Specs of capabilities the driver does not claim. */
const EXPECTED_SKIPS = [
  /Snapshot/i,
  /ListVolumes/,
  /GetCapacity/,
  /ModifyVolume/i,
  /VolumeHealth|NodeGetVolumeStats|VolumeStats|StorageHealth/i,
  /GroupController/,
  /max attach limit/,
  /volume attribute class/,
  /NodeStageVolume|NodeUnstageVolume|stage/i,
  /clone|from an existing source|source volume/i,
  /pagination/,
];

describe('csi-sanity v5.6.0 against the test-only cloud driver', { skip }, () => {
  const cleanup = new Cleanup();
  let dir: string;
  let socket: string;

  before(async () => {
    if (!tools.ok) throw new Error(`the Kubernetes test tools are needed: ${tools.reason}`);
    dir = await makeTempDir('cloud-csi-sanity', cleanup);
    const driver = await startCloudCsi({
      cleanup,
      root: join(dir, 'cloud'),
      zones: ['zone-a', 'zone-b'],
      socketPath: join(dir, 'csi.sock'),
      csiProto: tools.tools.protos.csi,
      node: { name: 'n1', zone: 'zone-a' },
    });
    // before the directory goes: a mount the driver left must never be followed by rm
    cleanup.add(() => unmountUnder(`${dir}/`), 'unmount what the driver left');
    socket = driver.socket;
  });
  after(() => cleanup.run());

  test('every spec passes; only specs of capabilities not advertised are skipped', { timeout: 20 * 60_000 }, async () => {
    if (!tools.ok) throw new Error(tools.reason);
    const { code, output, failed, skipped, passed } = await runCsiSanity({
      cleanup,
      bin: tools.tools.bin('csi-sanity'),
      socket,
      dir,
      args: ['--csi.testvolumesize=67108864', '--csi.testvolumeexpandsize=134217728'],
    });
    assert.deepEqual(failed, [], `failed specs:\n${failed.join('\n')}\n\ncsi-sanity output:\n${output}`);
    assert.equal(code, 0, output.slice(-5000));
    const unexpected = skipped.filter((n) => !EXPECTED_SKIPS.some((r) => r.test(n)));
    assert.deepEqual(unexpected, [], `specs skipped although their capability is advertised:\n${unexpected.join('\n')}`);
    for (const mustRun of [
      'Node Service should work',
      'volume lifecycle should work',
      'ExpandVolume [Controller Server] should work',
      'NodeExpandVolume should work if node-expand is called after node-publish',
      'already published but is incompatible',
      'single node single writer access mode is already mounted at a different target path',
    ]) {
      assert.ok(
        passed.some((n) => n.includes(mustRun)),
        `a spec "${mustRun}" passed; passed:\n${passed.join('\n')}`,
      );
    }
    assert.deepEqual(mountsUnder(`${dir}/`), [], 'no mount is left under the test directory');
    assert.deepEqual(await listLoopDevicesFor(`${join(dir, 'cloud')}/`), [], 'no disk is left attached');
  });
});
