import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  findK8sTools,
  isCI,
  makeTempDir,
  runCsiSanity,
  type ServerProcess,
  skipUnless,
  startCsiDriver,
  startServerProcess,
  unmountUnder,
} from '@dotmesh/testkit';
import { CONTROLLER_CAPABILITIES, NODE_CAPABILITIES } from '../src/index.ts';

/**
 * csi-sanity v5.6.0 (the CSI community's conformance suite, built by tools/k8s/build) against
 * the driver on a real btrfs pool and a real dotmesh-server, with every capability the driver
 * advertises. Every spec it runs must pass; the ones it skips are only those of capabilities
 * the driver does not claim (expansion, modification, GetSnapshot, ...). The GroupController
 * specs run (the driver advertises GROUP_CONTROLLER_SERVICE).
 */
const tools = findK8sTools();
const skip = skipUnless(['root', 'btrfs', 'losetup']) || (tools.ok || isCI() ? false : tools.reason);

/** Specs csi-sanity skips for capabilities this driver does not advertise (their titles contain these). */
const EXPECTED_SKIPS = [
  /ExpandVolume/i,
  /ModifyVolume/i,
  /GetSnapshot \[Controller Server\]/,
  /ListVolumeHealth/,
  /max attach limit/,
  /volume attribute class/,
  /node-expand/,
  /NodeGetStorageHealth|StorageHealth/,
  // Topology: a volume is on no particular node (dots move), so no accessibility constraints.
  /with accessibility requirements/,
  // Marked pending in csi-sanity itself.
  /pagination should detect volumes added between pages/,
];

describe('csi-sanity v5.6.0 against the driver', { skip }, () => {
  const cleanup = new Cleanup();
  let server: ServerProcess;
  let dir: string;
  let socket: string;

  before(async () => {
    if (!tools.ok) throw new Error(`the Kubernetes test tools are needed: ${tools.reason}`);
    server = await startServerProcess({ cleanup, poolSize: '2G' });
    dir = await makeTempDir('csi-sanity', cleanup);
    // Before the directory goes: a mount the driver left must never be followed by rm.
    cleanup.add(() => unmountUnder(`${dir}/`), 'unmount what the driver left');
    const driver = await startCsiDriver({ cleanup, dir, server, csiProto: tools.tools.protos.csi });
    socket = driver.socket;
  });
  after(() => cleanup.run());

  test('every spec passes; only specs of capabilities not advertised are skipped', { timeout: 30 * 60_000 }, async () => {
    if (!tools.ok) throw new Error(tools.reason);
    const secret = `{user: admin, apiKey: ${JSON.stringify(server.apiKey)}}`;
    const secretsFile = join(dir, 'secrets.yaml');
    const names = [
      'CreateVolumeSecret',
      'DeleteVolumeSecret',
      'ControllerPublishVolumeSecret',
      'ControllerUnpublishVolumeSecret',
      'ControllerValidateVolumeCapabilitiesSecret',
      'NodeStageVolumeSecret',
      'NodePublishVolumeSecret',
      'CreateSnapshotSecret',
      'DeleteSnapshotSecret',
      'ListSnapshotsSecret',
    ];
    await writeFile(secretsFile, names.map((n) => `${n}: ${secret}\n`).join(''), { mode: 0o600 });
    const { code, output, failed, skipped, passed } = await runCsiSanity({
      cleanup,
      bin: tools.tools.bin('csi-sanity'),
      socket,
      dir,
      args: [`--csi.secrets=${secretsFile}`, '--csi.testvolumesize=16777216'],
    });
    assert.deepEqual(failed, [], `failed specs:\n${failed.join('\n')}\n\ncsi-sanity output:\n${output}`);
    assert.equal(code, 0, output.slice(-5000));
    const unexpected = skipped.filter((n) => !EXPECTED_SKIPS.some((r) => r.test(n)));
    assert.deepEqual(unexpected, [], `specs skipped although their capability is advertised:\n${unexpected.join('\n')}`);
    for (const mustRun of [
      'should create volume from an existing source snapshot',
      'should create volume from an existing source volume',
      'should fail when the volume is already published but is incompatible',
      'should fail when volume with single node single writer access mode is already mounted at a different target path',
      'should return health for a valid volume',
      'should work',
      // GroupController (group snapshots): capabilities, and the bad-input specs csi-sanity has.
      'GroupController Service [GroupController Server] GroupControllerGetCapabilities should return appropriate capabilities',
      'GetVolumeGroupSnapshot should fail when an invalid volume id is used',
      'DeleteVolumeGroupSnapshot should succeed when an invalid volume id is used',
      'CreateVolumeGroupSnapshot should fail when no name is provided',
    ]) {
      assert.ok(
        passed.some((n) => n.includes(mustRun)),
        `"${mustRun}" passed`,
      );
    }
    assert.ok(passed.length >= 60, `${passed.length} specs passed`);
    // It deletes all it made: no dot, branch or mount of the driver is left behind.
    const left = (await server.admin.call('AllDotsAndBranches', null)).Dots.filter((d) =>
      d.MasterBranch.Name.Name.startsWith('csi-'),
    );
    assert.deepEqual(
      left.map((d) => `${d.MasterBranch.Name.Name} (${(d.OtherBranches ?? []).map((b) => b.Branch).join(', ')})`),
      [],
    );
    const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(` ${dir}/`));
    assert.deepEqual(mounts, [], 'no mount is left under the test directory');
    assert.ok(CONTROLLER_CAPABILITIES.includes('CLONE_VOLUME') && NODE_CAPABILITIES.includes('STAGE_UNSTAGE_VOLUME'));
  });
});
