import { join } from 'node:path';
import { after, before } from 'node:test';
import {
  Cleanup,
  type CsiDriverProcess,
  findK8sTools,
  isCI,
  makeTempDir,
  type ServerProcess,
  skipUnless,
  startCsiDriver,
  startServerProcess,
  unmountUnder,
} from '@dotmesh/testkit';
import { type CsiClient, csiClient } from '../src/client.ts';

/** A single-node mount volume capability, as the sidecars send it. */
export const CAP = { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

const tools = findK8sTools();

/** For `describe`: needs root, btrfs, losetup and csi.proto from tools/k8s/build (under CI=true: fails instead). */
export const CSI_SKIP = skipUnless(['root', 'btrfs', 'losetup']) || (tools.ok || isCI() ? false : tools.reason);

export interface CsiFixture {
  readonly cleanup: Cleanup;
  readonly server: ServerProcess;
  /** The test's directory (staging and target paths go under it; unmounted before removal). */
  readonly dir: string;
  readonly proto: string;
  /** The admin's credentials as Kubernetes secrets. */
  readonly secrets: Record<string, string>;
  readonly nodeId: string;
  driver: CsiDriverProcess;
  csi: CsiClient;
  /** Replaces the driver by a new process (with these failpoints armed) and reconnects. */
  restartDriver(failpoints?: readonly string[]): Promise<void>;
}

/**
 * Registers hooks (in the calling describe) that start a real dotmesh-server on a btrfs pool and
 * the built driver against it, with a CSI client; everything goes in `after`.
 */
export function useCsiFixture(name: string): () => CsiFixture {
  const cleanup = new Cleanup();
  let f: CsiFixture | undefined;
  before(async () => {
    if (!tools.ok) throw new Error(`the Kubernetes test tools are needed: ${tools.reason}`);
    const proto = tools.tools.protos.csi;
    const server = await startServerProcess({ cleanup, poolSize: '2G' });
    const dir = await makeTempDir(name, cleanup);
    cleanup.add(() => unmountUnder(`${dir}/`), 'unmount what the driver left');
    const driver = await startCsiDriver({ cleanup, dir, server, csiProto: proto });
    const csi = csiClient(driver.socket, proto);
    cleanup.add(async () => f?.csi.close(), 'close the CSI client');
    const nodeId = String((await csi.Node.NodeGetInfo({})).node_id);
    const fixture: CsiFixture = {
      cleanup,
      server,
      dir,
      proto,
      secrets: { user: 'admin', apiKey: server.apiKey },
      nodeId,
      driver,
      csi,
      async restartDriver(failpoints = []) {
        await fixture.driver.process.stop();
        fixture.driver = await fixture.driver.restart(failpoints);
        fixture.csi.close();
        fixture.csi = csiClient(fixture.driver.socket, proto);
      },
    };
    f = fixture;
  });
  after(() => cleanup.run());
  return () => {
    if (!f) throw new Error('the CSI fixture is not started');
    return f;
  };
}

/** Where a test volume is mounted: its staging path and the pod's target path. */
export interface TestMount {
  readonly staging: string;
  readonly target: string;
}

/** Publishes, stages and publishes to a pod path the volume `id` on the fixture's node, as the kubelet does. */
export async function mountVolume(f: CsiFixture, id: string, name: string): Promise<TestMount> {
  const staging = join(f.dir, `staging-${name}`);
  const target = join(f.dir, `pod-${name}`, 'mount');
  await f.csi.Controller.ControllerPublishVolume({
    volume_id: id,
    node_id: f.nodeId,
    volume_capability: CAP,
    secrets: f.secrets,
  });
  await f.csi.Node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: CAP, secrets: f.secrets });
  await f.csi.Node.NodePublishVolume({
    volume_id: id,
    staging_target_path: staging,
    target_path: target,
    volume_capability: CAP,
    secrets: f.secrets,
  });
  return { staging, target };
}

/** Undoes mountVolume. */
export async function unmountVolume(f: CsiFixture, id: string, m: TestMount): Promise<void> {
  await f.csi.Node.NodeUnpublishVolume({ volume_id: id, target_path: m.target });
  await f.csi.Node.NodeUnstageVolume({ volume_id: id, staging_target_path: m.staging });
  await f.csi.Controller.ControllerUnpublishVolume({ volume_id: id, node_id: f.nodeId, secrets: f.secrets });
}
