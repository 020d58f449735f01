import { randomBytes } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { holdCachedFile } from '../cached-build.ts';
import type { Cleanup } from '../cleanup.ts';
import { detachLoopDevicesUnder, unmountUnder } from '../loop.ts';
import { runCommand, waitFor } from '../process.ts';
import { makeTempDir } from '../tmp.ts';
import type { TestCluster, TestClusterNode } from './cluster.ts';
import { manifestFromDoc, replaceInManifest } from './doc-manifest.ts';
import type { TestImage } from './images.ts';
import { deleteAndWait, forceDeleteOrphanedPods } from './pods.ts';
import {
  CSI_SIDECARS,
  type CsiSidecar,
  csiSidecarImage,
  importIntoCluster,
  operatorImage,
  provisionerImage,
  serverImage,
} from './product-images.ts';
import { installVolumeSnapshotCrds } from './snapshot-crds.ts';

/**
 * Dotmesh installed on a test cluster as docs/kubernetes.md tells users (its `dotmesh.yaml` and
 * `dotmesh-configuration.yaml` manifests, the Secret `dotmesh`), with the product's images built
 * from a checkout's dist/ (`npm run build` first). Shared by the operator's e2e test and the
 * Kubernetes benchmark. Deviations from the documented install, each for a reason:
 * - the pools' directory is made a shared mount first (Bidirectional mount propagation needs
 *   one; hosts running systemd have / shared, this machine does not);
 * - the image names (server, operator, provisioner): locally built images (no registry);
 * - the ConfigMap's local.poolLocation, flexvolumeDriverDir and kubeletRootDir: under the
 *   caller's own directory and the test nodes' own FlexVolume and kubelet directories (each
 *   test kubelet has its own; never the host's /var/lib/dotmesh or /var/lib/kubelet);
 * - the Secret `dotmesh` holds random test credentials.
 */
export const DOTMESH_NAMESPACE = 'dotmesh';
const SERVER_ROLE = 'dotmesh.io/role=dotmesh-server';

export interface DocInstall {
  /** The applied operator manifest (images replaced). */
  readonly manifest: string;
  /** The parent of the nodes' pool directories (`<pools>/<node name>`). */
  readonly pools: string;
  /** The server image the manifest names (imported into every node; it holds dotmesh-csi too). */
  readonly serverImage: TestImage;
  /** Every product image imported into the nodes (for a node added later: `addClusterNode`'s images). */
  readonly images: readonly TestImage[];
  /** The API key of the servers' `admin` user (also in the Secret). */
  readonly apiKey: string;
  /** The ConfigMap data the install set beside the documented defaults. */
  readonly baseData: Readonly<Record<string, string>>;
  /** The documented ConfigMap with `data`'s keys set (a key already there gets the new value). */
  configMap(data: Readonly<Record<string, string>>): string;
}

/** The installed FlexVolume driver's directory in a node's FlexVolume plugin directory. */
export function installedDriverDir(node: TestClusterNode): string {
  return join(node.paths.flexVolumeDir, 'dotmesh.io~dm');
}

/**
 * Installs Dotmesh on `cluster` from `docFile` (docs/kubernetes.md) with the images built from
 * `dist`, and registers its removal on `cleanup`: the manifest's objects (cluster-scoped ones
 * included; the namespace takes the pods, ConfigMap, Secret, Lease and Events with it), the
 * FlexVolume drivers the server pods installed, then the pools (unmounted, their loop devices
 * detached); the images stay in the nodes until the cluster goes (`importIntoCluster`). Returns
 * once everything is applied, not when it runs (`waitForDotmesh`). `onBeforeRemoval` runs first
 * at cleanup (e.g. to print diagnostics).
 */
export async function installDotmeshFromDoc(
  cluster: TestCluster,
  cleanup: Cleanup,
  o: {
    readonly docFile: string;
    readonly dist: string;
    readonly onBeforeRemoval?: (install: DocInstall) => unknown;
    /** ConfigMap keys the cluster starts with, beside the documented ones (e.g. storageMode). */
    readonly config?: Readonly<Record<string, string>>;
  },
): Promise<DocInstall> {
  const { kubectl } = cluster;
  const dir = await makeTempDir('k8s-dotmesh', cleanup);
  // The servers leave their pools mounted and attached when they stop (by design): once the
  // pods are gone, everything under the pools' shared bind mount goes (itself last).
  const pools = join(dir, 'pools');
  await mkdir(pools);
  await runCommand('mount', ['--bind', pools, pools]);
  cleanup.add(async () => {
    await unmountUnder(pools);
    await detachLoopDevicesUnder(pools);
  }, `unmount and detach the nodes' pools under ${pools}`);
  await runCommand('mount', ['--make-rshared', pools]);
  const server = await serverImage({ dist: o.dist, etcd: cluster.tools.bin('etcd'), protos: cluster.tools.protos });
  const operator = await operatorImage({ dist: o.dist });
  const provisioner = await provisionerImage({ dist: o.dist });
  // Nodes added later import them too: kept in the cache until the install is removed.
  for (const image of [server, operator, provisioner]) await holdCachedFile(image.archive, cleanup);
  await importIntoCluster(cluster, [server, operator, provisioner]);
  const manifest = replaceInManifest(await manifestFromDoc(o.docFile, 'dotmesh.yaml'), {
    'dotmesh/dotmesh-operator:0.1.0': operator.ref,
    'dotmesh/dotmesh-server:0.1.0': server.ref,
    'dotmesh/dotmesh-provisioner:0.1.0': provisioner.ref,
  });
  const configText = await manifestFromDoc(o.docFile, 'dotmesh-configuration.yaml');
  const baseData = {
    'local.poolLocation': join(pools, '#HOSTNAME#'),
    flexvolumeDriverDir: join(cluster.dir, '#HOSTNAME#', 'flexvolume'),
    kubeletRootDir: join(cluster.dir, '#HOSTNAME#', 'kubelet'),
  };
  for (const n of cluster.nodes) {
    for (const [key, want] of [
      ['flexvolumeDriverDir', n.paths.flexVolumeDir],
      ['kubeletRootDir', n.paths.kubeletRootDir],
    ] as const)
      if (baseData[key].replace('#HOSTNAME#', n.name) !== want)
        throw new Error(`${key} ${baseData[key]} is not ${n.name}'s directory ${want}`);
  }
  const configMap = (data: Readonly<Record<string, string>>) => {
    let text = configText;
    for (const [k, v] of Object.entries(data)) {
      const line = new RegExp(`^  ${k.replaceAll('.', '\\.')}: .*$`, 'm');
      const set = `  ${k}: ${JSON.stringify(v)}`;
      text = line.test(text) ? text.replace(line, set) : `${text}${set}\n`;
    }
    return text;
  };
  const apiKey = randomBytes(16).toString('hex');
  const images = [server, operator, provisioner];
  const install: DocInstall = { manifest, pools, serverImage: server, images, apiKey, baseData, configMap };
  cleanup.add(async () => {
    for (const n of cluster.nodes) await rm(installedDriverDir(n), { recursive: true, force: true });
  }, 'remove the installed FlexVolume drivers');
  cleanup.add(async () => {
    // The controllers first, then the pods they made, then the manifest: a namespace deleted
    // while its pods stop is finished by the namespace controller only after half their grace
    // period (the server pods': 120 s), a namespace without pods at once. A server pod left on
    // a node a test removed has no kubelet to end it: it goes at once.
    await deleteAndWait(cluster, ['deployment', '--all', '-n', DOTMESH_NAMESPACE]);
    await forceDeleteOrphanedPods(cluster, DOTMESH_NAMESPACE);
    // A second of grace, not the servers' 120 s with a preStop that waits for unmounts: the
    // test pods are gone by now, and what a stopped server leaves mounted goes below.
    await deleteAndWait(cluster, ['pod', '--all', '-n', DOTMESH_NAMESPACE, '--grace-period=1']);
    await kubectl(['delete', '-f', '-', '--ignore-not-found', '--wait=true', '--timeout=180s'], {
      input: manifest,
      timeoutMs: 200_000,
    });
  }, 'delete the Dotmesh manifest (its Deployments and pods first)');
  const before = o.onBeforeRemoval;
  if (before) cleanup.add(() => before(install), 'before removing Dotmesh');
  await kubectl(['create', 'namespace', DOTMESH_NAMESPACE]);
  await kubectl([
    'create',
    'secret',
    'generic',
    'dotmesh',
    '-n',
    DOTMESH_NAMESPACE,
    `--from-literal=dotmesh-admin-password.txt=${randomBytes(12).toString('hex')}`,
    `--from-literal=dotmesh-api-key.txt=${apiKey}`,
  ]);
  await kubectl(['apply', '-f', '-'], { input: configMap({ ...baseData, ...o.config }) });
  await kubectl(['apply', '-f', '-'], { input: manifest });
  return install;
}

interface PodList {
  items: {
    metadata: { name: string; deletionTimestamp?: string };
    status?: { conditions?: { type: string; status: string }[] };
  }[];
}

/**
 * Waits until Dotmesh serves volumes on `nodes` of an installed cluster: a Ready server pod
 * `server-<node>` on each, its FlexVolume driver installed there (with its socket), and the
 * dynamic provisioner's Deployment ready.
 */
export async function waitForDotmesh(
  cluster: TestCluster,
  nodes: readonly TestClusterNode[],
  timeoutMs = 600_000,
): Promise<void> {
  const { kubectl } = cluster;
  const names = nodes.map((n) => `server-${n.name}`);
  await waitFor(
    async () => {
      const { stdout } = await kubectl(['get', 'pods', '-n', DOTMESH_NAMESPACE, '-l', SERVER_ROLE, '-o', 'json']);
      const ready = (JSON.parse(stdout) as PodList).items
        .filter(
          (p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        )
        .map((p) => p.metadata.name);
      return names.every((n) => ready.includes(n));
    },
    { timeoutMs, intervalMs: 1000, what: `server pods ${names.join(', ')} Ready` },
  );
  await waitFor(
    async () => {
      const sockets = await Promise.all(
        nodes.map((n) =>
          stat(join(installedDriverDir(n), 'dm.sock')).then(
            (st) => st.isSocket(),
            () => false,
          ),
        ),
      );
      return sockets.every(Boolean);
    },
    { timeoutMs: 120_000, intervalMs: 500, what: 'the FlexVolume driver installed and its socket served on every node' },
  );
  await waitFor(
    async () =>
      (
        await kubectl([
          'get',
          'deployment',
          '-n',
          DOTMESH_NAMESPACE,
          'dotmesh-dynamic-provisioner',
          '-o',
          'jsonpath={.status.readyReplicas}',
        ])
      ).stdout === '1',
    { timeoutMs: 120_000, intervalMs: 1000, what: 'the provisioner Deployment ready' },
  );
}

/**
 * Installs the CSI driver on a cluster where `installDotmeshFromDoc` installed Dotmesh, as
 * docs/kubernetes.md says ("Deploying it with the operator"): the VolumeSnapshot and
 * VolumeGroupSnapshot CRDs, then its `dotmesh-csi.yaml` manifest with the local images
 * (deviation: the server image and the CSI sidecars are built here, the sidecars from the
 * tools' binaries of the versions the doc names).
 * Removed again at cleanup (the images stay until the cluster goes). Returns once applied
 * (`waitForDotmeshCsi`).
 */
export async function installDotmeshCsiFromDoc(
  cluster: TestCluster,
  cleanup: Cleanup,
  install: DocInstall,
  o: { readonly docFile: string },
): Promise<string> {
  const sidecars = await Promise.all(CSI_SIDECARS.map((name) => csiSidecarImage(cluster.tools, name)));
  await importIntoCluster(cluster, sidecars);
  await installVolumeSnapshotCrds(cluster, cleanup);
  const text = await manifestFromDoc(o.docFile, 'dotmesh-csi.yaml');
  const versions = /registry\.k8s\.io\/sig-storage\/([a-z-]+):(v[0-9.]+)/g;
  const replacements: Record<string, string> = { 'dotmesh/dotmesh-server:0.1.0': install.serverImage.ref };
  for (const m of text.matchAll(versions)) {
    const i = CSI_SIDECARS.indexOf(m[1] as CsiSidecar);
    if (i < 0) throw new Error(`dotmesh-csi.yaml names ${m[0]}, which the test tools do not build`);
    replacements[m[0]] = sidecars[i]!.ref;
  }
  const manifest = replaceInManifest(text, replacements);
  cleanup.add(
    () =>
      cluster.kubectl(['delete', '-f', '-', '--ignore-not-found', '--wait=true', '--timeout=180s'], {
        input: manifest,
        timeoutMs: 200_000,
      }),
    'delete the CSI manifest',
  );
  await cluster.kubectl(['apply', '-f', '-'], { input: manifest });
  return manifest;
}

/** Waits until the CSI controller is ready and every node's kubelet lists csi.dotmesh.io (its CSINode). */
export async function waitForDotmeshCsi(
  cluster: TestCluster,
  nodes: readonly TestClusterNode[],
  timeoutMs = 300_000,
): Promise<void> {
  for (const deployment of ['dotmesh-csi-controller', 'dotmesh-snapshot-controller']) {
    await waitFor(
      async () =>
        (
          await cluster.kubectl([
            'get',
            'deployment',
            '-n',
            DOTMESH_NAMESPACE,
            deployment,
            '-o',
            'jsonpath={.status.readyReplicas}',
          ])
        ).stdout === '1',
      { timeoutMs, intervalMs: 1000, what: `the Deployment ${deployment} ready` },
    );
  }
  for (const node of nodes) {
    await waitFor(
      async () =>
        (await cluster.kubectl(['get', 'csinode', node.name, '-o', 'jsonpath={.spec.drivers[*].name}'])).stdout.includes(
          'csi.dotmesh.io',
        ),
      { timeoutMs, intervalMs: 1000, what: `csi.dotmesh.io registered with the kubelet of ${node.name}` },
    );
  }
}

/**
 * The teardown of a `storageMode: pvcPerNode` install's pools, to run before the install's own
 * removal (register it after installDotmeshFromDoc): the operator first (it would make them
 * again), then the server pods (they let go of their pools), then the pool PVCs and `pvs`
 * (static ones the caller made), and waits until the PVs of `storageClass` are gone, i.e. the
 * cloud driver deleted their disks (before the driver itself is stopped).
 */
export async function deletePoolVolumes(
  cluster: TestCluster,
  storageClass: string,
  o: { readonly pvs?: readonly string[] } = {},
): Promise<void> {
  await deleteAndWait(cluster, ['deployment', 'dotmesh-operator', '-n', DOTMESH_NAMESPACE]);
  await deleteAndWait(cluster, ['pod', '-n', DOTMESH_NAMESPACE, '-l', SERVER_ROLE]);
  await deleteAndWait(cluster, ['pvc', '-n', DOTMESH_NAMESPACE, '-l', 'dotmesh.io/role=dotmesh-pvc']);
  for (const pv of o.pvs ?? []) await deleteAndWait(cluster, ['pv', pv]);
  await waitFor(
    async () =>
      !(await cluster.kubectl(['get', 'pv', '-o', 'jsonpath={.items[*].spec.storageClassName}'])).stdout
        .split(' ')
        .includes(storageClass),
    { timeoutMs: 180_000, intervalMs: 1000, what: `the PVs of ${storageClass} deleted` },
  );
}
