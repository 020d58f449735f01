import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type CsiClient, csiClient } from '@dotmesh/csi';
import { Cleanup, makeTempDir, startCsiDriver, unmountUnder } from '@dotmesh/testkit';
import { createSubvolume, deleteSubvolumes, sh } from './btrfs.ts';
import { alternate, atMost, ratio, summarize, timeMs } from './harness.ts';
import type { Row } from './report.ts';
import type { BenchServer } from './server.ts';

/**
 * P8: a Kubernetes volume from nothing to mounted in a pod's directory, through the CSI driver
 * (the built `dist/dotmesh-csi.mjs`, as the sidecars and the kubelet call it): CreateVolume →
 * ControllerPublishVolume → NodeStageVolume → NodePublishVolume, on the server's node.
 * Reference, on the same pool: `btrfs subvolume create` + `mount --bind` to a target directory.
 * Target: p50 ≤ 200 ms. Samples alternate which side goes first; every volume is unpublished
 * and deleted afterwards (not timed).
 */
export const P8_MS = 200;

const CAP = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

export async function benchCsi(cleanup: Cleanup, s: BenchServer, o: { samples: number; csiProto: string }): Promise<Row[]> {
  const local = new Cleanup();
  cleanup.add(() => local.run(), 'P8 driver and mounts');
  const dir = await makeTempDir('bench-csi', local);
  local.add(() => unmountUnder(`${dir}/`), 'unmount P8 targets');
  const driver = await startCsiDriver({ cleanup: local, dir, server: s.proc, csiProto: o.csiProto });
  const csi = csiClient(driver.socket, o.csiProto);
  local.add(async () => csi.close(), 'close the CSI client');
  const secrets = { user: 'admin', apiKey: s.proc.apiKey };
  const nodeId = String((await csi.Node.NodeGetInfo({})).node_id);
  const dot: number[] = [];
  const raw: number[] = [];
  const volumes: string[] = [];
  const rawVolumes: string[] = [];
  try {
    for (let i = 0; i < o.samples; i++) {
      const staging = join(dir, `staging-${i}`);
      const target = join(dir, `pod-${i}`, 'mount');
      const rawVol = join(s.rawRoot, `p8-${i}`);
      const rawTarget = join(dir, `raw-pod-${i}`, 'mount');
      const timeDot = async () =>
        dot.push(
          await timeMs(async () => {
            await createAndPublish(csi, { name: `p8-${i}`, nodeId, staging, target, secrets }, (id) => volumes.push(id));
          }),
        );
      const timeRaw = async () =>
        raw.push(
          await timeMs(async () => {
            await createSubvolume(rawVol);
            rawVolumes.push(rawVol);
            await mkdir(rawTarget, { recursive: true });
            await sh('mount', ['--bind', rawVol, rawTarget]);
          }),
        );
      await alternate(i, timeDot, timeRaw);
    }
  } finally {
    await tearDown(csi, volumes, dir, nodeId, secrets);
    await unmountUnder(`${dir}/`);
    if (rawVolumes.length > 0) await deleteSubvolumes(rawVolumes);
  }
  const figure = summarize(dot);
  const reference = summarize(raw);
  return [
    {
      id: 'P8',
      what: 'CSI CreateVolume → ControllerPublish → NodeStage → NodePublish',
      unit: 'ms',
      figure,
      reference: { what: 'btrfs subvolume create + mount --bind', stats: reference },
      ratio: ratio(figure.p50, reference.p50),
      verdict: atMost(`p50 ≤ ${P8_MS} ms`, figure.p50, P8_MS, 'ms'),
    },
  ];
}

/**
 * CreateVolume → ControllerPublishVolume → NodeStageVolume → NodePublishVolume of a new volume,
 * as the sidecars and the kubelet call them; `made` gets its id as soon as it exists (so that a
 * failure later still tears it down).
 */
export async function createAndPublish(
  csi: CsiClient,
  o: {
    readonly name: string;
    readonly nodeId: string;
    readonly staging: string;
    readonly target: string;
    readonly secrets: Record<string, string>;
  },
  made: (volumeId: string) => unknown,
): Promise<void> {
  const { secrets } = o;
  const v = (await csi.Controller.CreateVolume({ name: o.name, volume_capabilities: [CAP], secrets })) as {
    volume: { volume_id: string };
  };
  const id = v.volume.volume_id;
  made(id);
  await csi.Controller.ControllerPublishVolume({ volume_id: id, node_id: o.nodeId, volume_capability: CAP, secrets });
  await csi.Node.NodeStageVolume({ volume_id: id, staging_target_path: o.staging, volume_capability: CAP, secrets });
  await csi.Node.NodePublishVolume({
    volume_id: id,
    staging_target_path: o.staging,
    target_path: o.target,
    volume_capability: CAP,
    secrets,
  });
}

async function tearDown(
  csi: CsiClient,
  volumes: readonly string[],
  dir: string,
  nodeId: string,
  secrets: Record<string, string>,
) {
  for (const [i, id] of volumes.entries()) {
    await csi.Node.NodeUnpublishVolume({ volume_id: id, target_path: join(dir, `pod-${i}`, 'mount') });
    await csi.Node.NodeUnstageVolume({ volume_id: id, staging_target_path: join(dir, `staging-${i}`) });
    await csi.Controller.ControllerUnpublishVolume({ volume_id: id, node_id: nodeId, secrets });
    await csi.Controller.DeleteVolume({ volume_id: id, secrets });
  }
}
