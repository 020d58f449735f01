import { lstat, mkdir, open, rm, rmdir } from 'node:fs/promises';
import { CsiError, invalid, type Log, notFound, unary, type VolumeCapability } from '@dotmesh/csi';
import { status as Status, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { nodeId, required, requireSupported, ZONE_KEY } from './capabilities.ts';
import type { Disks } from './disks.ts';
import { attachLoop, deviceInUse, filesystemOn, loopOf, mountAt, sh } from './host.ts';
import { Serial } from './serial.ts';

export const NODE_CAPABILITIES = ['EXPAND_VOLUME', 'SINGLE_NODE_MULTI_WRITER'] as const;

interface PublishRequest {
  readonly volume_id: string;
  readonly target_path: string;
  readonly volume_capability: VolumeCapability | null;
  readonly readonly: boolean;
}

/**
 * The Node service of node `node` in `zone`: a disk attached to this node (its record says so)
 * appears as a loop device of its file; a block volume is that device bind-mounted at the
 * target, a mount volume its filesystem (made on first use) mounted there. The loop device is
 * detached once nothing on the host uses it.
 */
export function nodeService(disks: Disks, node: string, zone: string, log: Log): UntypedServiceImplementation {
  const serial = new Serial();
  const id = nodeId(node, zone);
  const one = <Req, Res>(method: string, fn: (req: Req) => Promise<Res>) =>
    unary<Req, Res>(method, (req) => serial.run(() => fn(req)), log);
  return {
    NodeGetInfo: unary(
      'NodeGetInfo',
      async () => ({ node_id: id, max_volumes_per_node: 0, accessible_topology: { segments: { [ZONE_KEY]: zone } } }),
      log,
    ),
    NodeGetCapabilities: unary(
      'NodeGetCapabilities',
      async () => ({ capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) }),
      log,
    ),
    NodePublishVolume: one('NodePublishVolume', async (req: PublishRequest) => {
      const volumeId = required(req.volume_id, 'volume_id', 'NodePublishVolume');
      const target = required(req.target_path, 'target_path', 'NodePublishVolume');
      if (!req.volume_capability) throw invalid('NodePublishVolume: volume_capability is required');
      const cap = req.volume_capability;
      requireSupported([cap], 'NodePublishVolume');
      const disk = await disks.require(volumeId);
      if (disk.attachedTo !== id) {
        throw new CsiError(
          Status.FAILED_PRECONDITION,
          `volume ${disk.id} is not attached to this node (${id}): ControllerPublishVolume first`,
        );
      }
      const device = await attachLoop(disks.imagePath(disk));
      const mounted = await mountAt(target);
      if (mounted) return {}; // published already (the kubelet retries)
      if (cap.access_mode?.mode === 'SINGLE_NODE_SINGLE_WRITER' && (await deviceInUse(device))) {
        throw new CsiError(
          Status.FAILED_PRECONDITION,
          `volume ${disk.id} (single writer) is published at another target already`,
        );
      }
      const readOnly = req.readonly || cap.access_mode?.mode === 'SINGLE_NODE_READER_ONLY';
      if (cap.block) {
        await open(target, 'a').then((f) => f.close());
        await sh('mount', ['--bind', device, target]);
        if (readOnly) await sh('mount', ['-o', 'remount,bind,ro', target]);
        return {};
      }
      const wanted = cap.mount?.fs_type || 'ext4';
      const present = await filesystemOn(device);
      if (present === '') await sh(wanted === 'btrfs' ? 'mkfs.btrfs' : 'mkfs.ext4', ['-q', device]);
      else if (present !== wanted) {
        throw new CsiError(Status.FAILED_PRECONDITION, `volume ${disk.id} holds a ${present} filesystem, not ${wanted}`);
      }
      await mkdir(target, { recursive: true });
      const options = [...(cap.mount?.mount_flags ?? []), ...(readOnly ? ['ro'] : [])];
      await sh('mount', ['-t', wanted, ...(options.length ? ['-o', options.join(',')] : []), device, target]);
      return {};
    }),
    NodeUnpublishVolume: one('NodeUnpublishVolume', async (req: { volume_id: string; target_path: string }) => {
      const volumeId = required(req.volume_id, 'volume_id', 'NodeUnpublishVolume');
      const target = required(req.target_path, 'target_path', 'NodeUnpublishVolume');
      if (await mountAt(target)) await sh('umount', [target]);
      await removeTarget(target);
      const disk = await disks.get(volumeId);
      const device = disk ? await loopOf(disks.imagePath(disk)) : undefined;
      if (device && !(await deviceInUse(device))) await sh('losetup', ['-d', device]);
      return {};
    }),
    NodeExpandVolume: one(
      'NodeExpandVolume',
      async (req: { volume_id: string; volume_path: string; volume_capability: VolumeCapability | null }) => {
        const disk = await disks.require(required(req.volume_id, 'volume_id', 'NodeExpandVolume'));
        const path = required(req.volume_path, 'volume_path', 'NodeExpandVolume');
        const device = await loopOf(disks.imagePath(disk));
        if (!device) throw notFound(`volume ${disk.id} is not published on this node`);
        await sh('losetup', ['--set-capacity', device]);
        const mounted = await mountAt(path);
        if (!mounted) throw notFound(`volume path ${path} is not a mount point of volume ${disk.id}`);
        if (mounted.fstype === 'ext4') await sh('resize2fs', [device]);
        else if (mounted.fstype === 'btrfs') await sh('btrfs', ['filesystem', 'resize', 'max', path]);
        // a block volume (a bind of the device node) needs nothing more
        return { capacity_bytes: await disks.fileBytes(disk) };
      },
    ),
  };
}

/** Removes the target the publish made: an empty directory or a file (never anything inside one). */
async function removeTarget(target: string): Promise<void> {
  const st = await lstat(target).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) await rmdir(target);
  else await rm(target);
}
