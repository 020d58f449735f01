import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Cleanup } from '../cleanup.ts';
import { startCloudCsi } from '../cloud-csi.ts';
import { spawnTracked, waitFor } from '../process.ts';
import { makeTempDir } from '../tmp.ts';
import type { TestCluster, TestClusterNode } from './cluster.ts';

/** The test-only cloud driver's name, and the topology key of its zones (packages/cloud-csi). */
export const CLOUD_DRIVER = 'cloud.test.dotmesh.io';
export const CLOUD_ZONE_KEY = 'topology.cloud.test.dotmesh.io/zone';

export interface CloudVolumes {
  /** The StorageClass of cloud disks (WaitForFirstConsumer, expandable). */
  readonly storageClass: string;
  /** The folder holding every disk (`<root>/<zone>/<id>.img`), shared by the nodes. */
  readonly root: string;
  /** The zone of each node, by node name (nodes given to `addNode` too). */
  readonly zones: Readonly<Record<string, string>>;
  /**
   * Runs the node plugin on a node added to the cluster later (added-nodes.ts), in `zone` (one
   * of the zones installed), and waits until the kubelet labelled the Node with it. The plugin
   * stops with the node's removal, or at this installation's place in its cleanup (after what
   * was added to the cleanup since, such as the pods using its volumes).
   */
  addNode(node: TestClusterNode, zone: string): Promise<void>;
}

/**
 * Gives the test cluster "cloud" volumes, standing in for EBS or PD: the test-only driver's node
 * plugin on every node (registered with its kubelet, which then labels the Node with its zone),
 * its controller with csi-provisioner (topology on), csi-attacher (a disk attaches to one node
 * of its zone at a time, detached by the attach-detach controller when its pods are gone) and
 * csi-resizer (a raised PVC request grows the disk, then the kubelet its filesystem online), the
 * CSIDriver object and the StorageClass `storageClass`. `zones` gives each node's zone, by node
 * index. One installation per cluster at a time (the CSIDriver object is cluster-wide). Cleanup
 * removes the StorageClass and the CSIDriver and stops the processes; the caller deletes its PVCs
 * (and so their disks) first.
 */
export async function installCloudVolumes(o: {
  readonly cluster: TestCluster;
  readonly cleanup: Cleanup;
  readonly zones: readonly string[];
  readonly storageClass?: string;
  /**
   * The filesystem the disks get (the StorageClass's `csi.storage.k8s.io/fstype`; default the
   * driver's, ext4). Online growth here needs btrfs: growing ext4 online (resize2fs) needs
   * CAP_SYS_RESOURCE, which the test machines' root may lack.
   */
  readonly fsType?: 'ext4' | 'btrfs';
}): Promise<CloudVolumes> {
  const { cluster, cleanup } = o;
  const dir = await makeTempDir('k8s-cloud', cleanup);
  const root = join(dir, 'disks');
  const zoneNames = [...new Set(o.zones)];
  const zones: Record<string, string> = {};
  const storageClass = o.storageClass ?? 'cloud';
  const startNodePlugin = async (node: TestClusterNode, zone: string, stops: Cleanup) => {
    if (!zoneNames.includes(zone)) throw new Error(`zone ${zone} is not one of the installed zones ${zoneNames.join(', ')}`);
    zones[node.name] = zone;
    const pluginDir = join(node.paths.kubeletRootDir, 'plugins', CLOUD_DRIVER);
    await mkdir(pluginDir, { recursive: true });
    await startCloudCsi({
      cleanup: stops,
      root,
      zones: zoneNames,
      socketPath: join(pluginDir, 'csi.sock'),
      csiProto: cluster.tools.protos.csi,
      node: { name: node.name, zone },
      registration: {
        dir: join(node.paths.kubeletRootDir, 'plugins_registry'),
        proto: cluster.tools.protos.pluginRegistration,
      },
    });
  };
  // Registered: the kubelet labels each Node with the zone its node plugin reports.
  const zoneLabelled = (node: TestClusterNode) =>
    waitFor(
      async () =>
        (
          await cluster.kubectl([
            'get',
            'node',
            node.name,
            '-o',
            `jsonpath={.metadata.labels.${CLOUD_ZONE_KEY.replaceAll('.', '\\.')}}`,
          ])
        ).stdout.trim() === zones[node.name],
      { timeoutMs: 60_000, what: `node ${node.name} labelled with its zone ${zones[node.name]}` },
    );
  await Promise.all(
    cluster.nodes.map(async (node, i) => {
      const zone = o.zones[i];
      if (zone === undefined) throw new Error(`no zone given for node ${node.name}`);
      await startNodePlugin(node, zone, cleanup);
    }),
  );
  // The plugins of nodes added later stop here in the order, not when they were added: after
  // whatever the caller made since this installation (its pods and PVCs, whose volumes they
  // unmount), never before (a pod whose node plugin is gone never finishes terminating).
  const addedPlugins = new Cleanup();
  cleanup.add(() => addedPlugins.run(), 'stop the cloud node plugins of the nodes added later');
  const controller = await startCloudCsi({
    cleanup,
    root,
    zones: zoneNames,
    socketPath: join(dir, 'controller.sock'),
    csiProto: cluster.tools.protos.csi,
  });
  const sidecar = (bin: string, extra: readonly string[]) =>
    spawnTracked(
      cluster.tools.bin(bin),
      [
        `--csi-address=${controller.socket}`,
        `--kubeconfig=${cluster.adminKubeconfig}`,
        '--leader-election=false',
        '--timeout=60s',
        ...extra,
      ],
      { cleanup },
    );
  sidecar('csi-provisioner', ['--feature-gates=Topology=true']);
  sidecar('csi-attacher', []);
  // Expansion: a PVC's raised request → ControllerExpandVolume, then the kubelet's NodeExpandVolume (online).
  sidecar('csi-resizer', []);
  const objects = [
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'CSIDriver',
      metadata: { name: CLOUD_DRIVER },
      spec: { attachRequired: true, podInfoOnMount: false, volumeLifecycleModes: ['Persistent'] },
    },
    {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: storageClass },
      provisioner: CLOUD_DRIVER,
      reclaimPolicy: 'Delete',
      volumeBindingMode: 'WaitForFirstConsumer',
      allowVolumeExpansion: true,
      ...(o.fsType ? { parameters: { 'csi.storage.k8s.io/fstype': o.fsType } } : {}),
    },
  ];
  cleanup.add(async () => {
    await cluster.kubectl(['delete', 'storageclass', storageClass, '--ignore-not-found', '--wait=false']);
    await cluster.kubectl(['delete', 'csidriver', CLOUD_DRIVER, '--ignore-not-found', '--wait=false']);
  }, 'remove the cloud StorageClass and CSIDriver');
  for (const m of objects) await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(m) });
  for (const node of cluster.nodes) await zoneLabelled(node);
  return {
    storageClass,
    root,
    zones,
    async addNode(node, zone) {
      await startNodePlugin(node, zone, addedPlugins);
      await zoneLabelled(node);
    },
  };
}
