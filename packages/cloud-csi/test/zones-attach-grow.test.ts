import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CsiClient, csiClient } from '@dotmesh/csi';
import { Cleanup, findK8sTools, isCI, makeTempDir, runCommand, skipUnless, startCloudCsi, unmountUnder } from '@dotmesh/testkit';
import { diskId, ZONE_KEY } from '../src/index.ts';

/**
 * What csi-sanity does not check, through the CSI API of two node plugins sharing one cloud
 * folder (n1 in zone-a, n2 in zone-b): disks go to the zone the topology asks for, attach only to
 * a node of their zone and to one node at a time, cannot be deleted while attached, and grow
 * online with their filesystem, data kept.
 */
const tools = findK8sTools();
const skip = skipUnless(['root', 'losetup']) || (tools.ok || isCI() ? false : tools.reason);

const MIB = 1024 * 1024;
const mountCap = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };
const zone = (z: string) => ({ segments: { [ZONE_KEY]: z } });

describe('the test-only cloud driver: zones, attachment, online growth', { skip }, () => {
  const cleanup = new Cleanup();
  let dir: string;
  let root: string;
  let n1: CsiClient;
  let n2: CsiClient;

  before(async () => {
    if (!tools.ok) throw new Error(`the Kubernetes test tools are needed: ${tools.reason}`);
    dir = await makeTempDir('cloud-csi-zones', cleanup);
    root = join(dir, 'cloud');
    const start = (name: string, z: string) =>
      startCloudCsi({
        cleanup,
        root,
        zones: ['zone-a', 'zone-b'],
        socketPath: join(dir, `${name}.sock`),
        csiProto: tools.tools.protos.csi,
        node: { name, zone: z },
      });
    const [d1, d2] = await Promise.all([start('n1', 'zone-a'), start('n2', 'zone-b')]);
    cleanup.add(() => unmountUnder(`${dir}/`), 'unmount what the test published');
    n1 = csiClient(d1.socket, tools.tools.protos.csi);
    n2 = csiClient(d2.socket, tools.tools.protos.csi);
    cleanup.add(() => {
      n1.close();
      n2.close();
    }, 'close the CSI clients');
  });
  after(() => cleanup.run());

  const create = (c: CsiClient, name: string, bytes: number, preferred: string[], requisite: string[] = preferred) =>
    c.Controller.CreateVolume({
      name,
      capacity_range: { required_bytes: bytes },
      volume_capabilities: [mountCap],
      accessibility_requirements: { preferred: preferred.map(zone), requisite: requisite.map(zone) },
    }) as Promise<{
      volume: { volume_id: string; capacity_bytes: number; accessible_topology: Array<{ segments: Record<string, string> }> };
    }>;
  const nodeIdOf = async (c: CsiClient) => (await c.Node.NodeGetInfo({})).node_id as string;
  const code = (name: string) => (e: unknown) => {
    assert.equal((e as { code: number }).code, { FAILED_PRECONDITION: 9, RESOURCE_EXHAUSTED: 8 }[name], (e as Error).message);
    return true;
  };

  test('a disk goes to the zone asked for and attaches only to a node of that zone', async () => {
    const { volume } = await create(n1, 'in-b', 64 * MIB, ['zone-b'], ['zone-a', 'zone-b']);
    assert.deepEqual(volume.accessible_topology, [zone('zone-b')]);
    assert.equal(volume.volume_id, diskId('in-b'));
    assert.ok(existsSync(join(root, 'zone-b', `${volume.volume_id}.img`)));
    await assert.rejects(create(n1, 'nowhere', 64 * MIB, ['zone-c']), code('RESOURCE_EXHAUSTED'));
    const publish = (node: string) =>
      n1.Controller.ControllerPublishVolume({ volume_id: volume.volume_id, node_id: node, volume_capability: mountCap });
    await assert.rejects(publish(await nodeIdOf(n1)), code('FAILED_PRECONDITION'));
    const context = await publish(await nodeIdOf(n2));
    assert.equal((context.publish_context as Record<string, string>).image, join(root, 'zone-b', `${volume.volume_id}.img`));
    await assert.rejects(publish('n3@zone-b'), code('FAILED_PRECONDITION'), 'attached to n2 already');
    await assert.rejects(n1.Controller.DeleteVolume({ volume_id: volume.volume_id }), code('FAILED_PRECONDITION'));
    await n1.Controller.ControllerUnpublishVolume({ volume_id: volume.volume_id, node_id: await nodeIdOf(n2) });
    await publish('n3@zone-b');
    await n1.Controller.ControllerUnpublishVolume({ volume_id: volume.volume_id, node_id: 'n3@zone-b' });
    await n1.Controller.DeleteVolume({ volume_id: volume.volume_id });
    assert.ok(!existsSync(join(root, 'zone-b', `${volume.volume_id}.img`)));
  });

  // btrfs, as a dotmesh pool: growing ext4 online needs CAP_SYS_RESOURCE, which this machine's
  // root lacks (resize2fs: "Permission denied to resize filesystem").
  test('a published btrfs volume grows online: the disk, then the filesystem; the data stays', async () => {
    const btrfsCap = { ...mountCap, mount: { fs_type: 'btrfs', mount_flags: [] } };
    const { volume } = await create(n1, 'grows', 128 * MIB, ['zone-a']);
    const node = await nodeIdOf(n1);
    await n1.Controller.ControllerPublishVolume({ volume_id: volume.volume_id, node_id: node, volume_capability: btrfsCap });
    const target = join(dir, 'target');
    await n1.Node.NodePublishVolume({ volume_id: volume.volume_id, target_path: target, volume_capability: btrfsCap });
    await writeFile(join(target, 'data'), 'kept');
    const size = async () => Number((await runCommand('df', ['--block-size=1', '--output=size', target])).stdout.split('\n')[1]);
    const before = await size();
    assert.ok(before <= 128 * MIB, `${before} bytes before`);
    const grown = await n1.Controller.ControllerExpandVolume({
      volume_id: volume.volume_id,
      capacity_range: { required_bytes: 384 * MIB },
    });
    assert.deepEqual([grown.capacity_bytes, grown.node_expansion_required], [384 * MIB, true]);
    const node2 = await n1.Node.NodeExpandVolume({
      volume_id: volume.volume_id,
      volume_path: target,
      capacity_range: { required_bytes: 384 * MIB },
    });
    assert.equal(node2.capacity_bytes, 384 * MIB);
    const after = await size();
    assert.ok(after > 300 * MIB, `${after} bytes after the growth`);
    assert.equal(await readFile(join(target, 'data'), 'utf8'), 'kept');
    await n1.Node.NodeUnpublishVolume({ volume_id: volume.volume_id, target_path: target });
    assert.ok(!existsSync(target), 'the target is removed');
    await n1.Controller.ControllerUnpublishVolume({ volume_id: volume.volume_id, node_id: node });
    await n1.Controller.DeleteVolume({ volume_id: volume.volume_id });
  });
});
