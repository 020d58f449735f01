import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type CsiClient, csiClient } from '@dotmesh/csi';
import { Cleanup, makeTempDir, startCsiDriver, unmountUnder } from '@dotmesh/testkit';
import { createSubvolume, deleteSubvolumes, sh } from './btrfs.ts';
import { ratio, single, summarize, timeMs } from './harness.ts';
import { createAndPublish } from './p8-csi.ts';
import type { Row } from './report.ts';
import { type BenchServer, pool, rssMiB } from './server.ts';

/**
 * P8 at scale (issue 18, "P6 for Kubernetes"; informational, no target of its own): `volumes`
 * volumes (1,000 in full mode) made and published on one node through the CSI calls of the
 * built driver — CreateVolume → ControllerPublishVolume → NodeStageVolume → NodePublishVolume,
 * `IN_FLIGHT` volumes at a time, as csi-provisioner's and csi-attacher's workers call it — then
 * ListVolumes with all of them published, and the driver's and the server's resident memory.
 * Reference, in the same run on the same pool: as many `btrfs subvolume create` + `mount --bind`,
 * the same number at a time. Everything is unpublished and deleted afterwards (not timed).
 */
const IN_FLIGHT = 4;
const LIST_SAMPLES = 5;

export async function benchCsiManyVolumes(
  cleanup: Cleanup,
  s: BenchServer,
  o: { volumes: number; csiProto: string },
): Promise<Row[]> {
  const local = new Cleanup();
  cleanup.add(() => local.run(), 'P8 many volumes: driver and mounts');
  const dir = await makeTempDir('bench-csi-many', local);
  local.add(() => unmountUnder(`${dir}/`), 'unmount the P8 targets');
  const driver = await startCsiDriver({ cleanup: local, dir, server: s.proc, csiProto: o.csiProto });
  const csi = csiClient(driver.socket, o.csiProto);
  local.add(async () => csi.close(), 'close the CSI client');
  const driverPid = driver.process.child.pid;
  if (driverPid === undefined) throw new Error('the CSI driver has no pid');
  const secrets = { user: 'admin', apiKey: s.proc.apiKey };
  const nodeId = String((await csi.Node.NodeGetInfo({})).node_id);
  const indexes = Array.from({ length: o.volumes }, (_, i) => i);
  const paths = (i: number) => ({ staging: join(dir, `staging-${i}`), target: join(dir, `pod-${i}`, 'mount') });
  const volumes = new Map<number, string>();
  const rawVolumes: string[] = [];
  try {
    const driverBefore = await rssMiB(driverPid);
    const csiMs = await timeMs(() =>
      pool(indexes, IN_FLIGHT, async (i) => {
        await createAndPublish(csi, { name: `p8many-${i}`, nodeId, ...paths(i), secrets }, (id) => volumes.set(i, id));
      }),
    );
    const list: number[] = [];
    for (let i = 0; i < LIST_SAMPLES; i++) {
      list.push(
        await timeMs(async () => {
          const listed = await listAll(csi);
          if (listed < o.volumes) throw new Error(`ListVolumes lists ${listed} volumes, expected at least ${o.volumes}`);
        }),
      );
    }
    const driverMem = await rssMiB(driverPid);
    const serverMem = await rssMiB(s.proc.pid);
    const rawMs = await timeMs(() =>
      pool(indexes, IN_FLIGHT, async (i) => {
        const vol = join(s.rawRoot, `p8many-${i}`);
        await createSubvolume(vol);
        rawVolumes.push(vol);
        const target = join(dir, `raw-pod-${i}`, 'mount');
        await mkdir(target, { recursive: true });
        await sh('mount', ['--bind', vol, target]);
      }),
    );
    const rate = o.volumes / (csiMs / 1000);
    const rawRate = o.volumes / (rawMs / 1000);
    const n = `${o.volumes} volumes, ${IN_FLIGHT} at a time`;
    return [
      {
        id: 'P8',
        what: `CSI CreateVolume → NodePublish throughput, ${n}`,
        unit: 'volumes/s',
        figure: single(rate),
        reference: { what: 'btrfs subvolume create + mount --bind', stats: single(rawRate) },
        ratio: ratio(rate, rawRate),
        note: `informational; all made in ${Math.round(csiMs)} ms (raw: ${Math.round(rawMs)} ms)`,
      },
      {
        id: 'P8',
        what: `CSI ListVolumes with ${o.volumes} volumes published`,
        unit: 'ms',
        figure: summarize(list),
        note: 'informational (P6’s List target is 300 ms)',
      },
      {
        id: 'P8',
        what: `CSI driver RSS with ${o.volumes} volumes published`,
        unit: 'MiB',
        figure: single(driverMem.rss),
        note: `informational; ${Math.round(driverBefore.rss)} MiB before, peak (VmHWM) ${Math.round(driverMem.peak)} MiB; the server ${Math.round(serverMem.rss)} MiB`,
      },
    ];
  } finally {
    await pool([...volumes], IN_FLIGHT, async ([i, id]) => {
      const { staging, target } = paths(i);
      await csi.Node.NodeUnpublishVolume({ volume_id: id, target_path: target });
      await csi.Node.NodeUnstageVolume({ volume_id: id, staging_target_path: staging });
      await csi.Controller.ControllerUnpublishVolume({ volume_id: id, node_id: nodeId, secrets });
      await csi.Controller.DeleteVolume({ volume_id: id, secrets });
    });
    await unmountUnder(`${dir}/`);
    if (rawVolumes.length > 0) await deleteSubvolumes(rawVolumes);
  }
}

/** Every volume ListVolumes pages through. */
async function listAll(csi: CsiClient): Promise<number> {
  let count = 0;
  let token = '';
  do {
    const page = (await csi.Controller.ListVolumes({ max_entries: 0, starting_token: token })) as {
      entries: unknown[];
      next_token: string;
    };
    count += page.entries.length;
    token = page.next_token;
  } while (token);
  return count;
}
