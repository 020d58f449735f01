import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cleanup } from './cleanup.ts';
import { detachLoopDevicesUnder } from './loop.ts';
import { spawnTracked, type TrackedProcess } from './process.ts';

/** The test-only "cloud" CSI driver (packages/cloud-csi), run from its TypeScript source. */
export const CLOUD_CSI_BIN = resolve(import.meta.dirname, '../../cloud-csi/src/bin.ts');

export interface CloudCsiProcess {
  readonly socket: string;
  readonly process: TrackedProcess;
}

/**
 * Runs the test-only cloud CSI driver with its disks under `root` (a folder every node shares)
 * and its socket at `socketPath`; a node plugin when `node` and `zone` are given. Resolves once
 * it listens. Cleanup stops it, then detaches the loop devices of the disks under `root` (what a
 * killed driver leaves); unmounting the publish targets is the caller's (they are its paths).
 */
export async function startCloudCsi(o: {
  readonly cleanup: Cleanup;
  readonly root: string;
  readonly zones: readonly string[];
  readonly socketPath: string;
  readonly csiProto: string;
  readonly node?: { readonly name: string; readonly zone: string };
  readonly registration?: { readonly dir: string; readonly proto: string };
  /** Run it in this network namespace (a test cluster node's). */
  readonly netnsPath?: string;
}): Promise<CloudCsiProcess> {
  o.cleanup.add(() => detachLoopDevicesUnder(`${o.root}/`), `detach the cloud disks under ${o.root}`);
  const argv = [
    process.execPath,
    CLOUD_CSI_BIN,
    `--endpoint=unix://${o.socketPath}`,
    `--root=${o.root}`,
    `--zones=${o.zones.join(',')}`,
    `--csi-proto=${o.csiProto}`,
    ...(o.node ? [`--node=${o.node.name}`, `--zone=${o.node.zone}`] : []),
    ...(o.registration ? [`--registration-dir=${o.registration.dir}`, `--registration-proto=${o.registration.proto}`] : []),
  ];
  const full = o.netnsPath ? ['nsenter', `--net=${o.netnsPath}`, '--', ...argv] : argv;
  const p = spawnTracked(full[0]!, full.slice(1), { cleanup: o.cleanup });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const listening = await access(o.socketPath).then(
      () => p.output().includes('"listening"'),
      () => false,
    );
    if (listening) return { socket: o.socketPath, process: p };
    if (p.child.exitCode !== null) throw new Error(`test-cloud-csi exited:\n${p.output()}`);
    if (Date.now() > deadline) throw new Error(`test-cloud-csi did not listen within 30 s:\n${p.output()}`);
    await sleep(100);
  }
}
