import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../process.ts';
import type { TestImage } from './images.ts';
import type { NodeNetwork } from './network.ts';
import { type ComponentLauncher, type ComponentProcess, waitUntil } from './process-log.ts';

/**
 * One node of the test cluster: its paths (all under the node's directory, plus its own cgroup
 * root) and its own containerd (Debian's 1.6: own root, state, socket, runc root, CNI
 * configuration), started inside the node's network namespace (`nsenter --net`, which keeps the
 * shared mount namespace: `ip netns exec` would remount /sys). kubelet.ts starts the kubelet
 * and kube-proxy beside it.
 */
export const CONTAINERD = '/usr/bin/containerd';
export const CTR = '/usr/bin/ctr';
export const CNI_BIN_DIR = '/usr/lib/cni';

export interface NodePaths {
  readonly dir: string;
  readonly containerdSocket: string;
  readonly containerdRoot: string;
  readonly containerdState: string;
  readonly kubeletRootDir: string;
  readonly podLogsDir: string;
  readonly flexVolumeDir: string;
  /** cgroup root in every hierarchy: `/<cgroupRoot>`. */
  readonly cgroupRoot: string;
  /** The CNI network's name (libcni's cache files in /var/lib/cni/results start with it). */
  readonly cniNetwork: string;
}

export function nodePaths(clusterDir: string, clusterTag: string, name: string): NodePaths {
  const dir = join(clusterDir, name);
  return {
    dir,
    containerdSocket: join(dir, 'containerd', 'containerd.sock'),
    containerdRoot: join(dir, 'containerd', 'root'),
    containerdState: join(dir, 'containerd', 'state'),
    kubeletRootDir: join(dir, 'kubelet'),
    podLogsDir: join(dir, 'pod-logs'),
    flexVolumeDir: join(dir, 'flexvolume'),
    cgroupRoot: `dmtest-k8s-${clusterTag}-${name}`,
    cniNetwork: `dmtest-k8s-${clusterTag}-${name}`,
  };
}

const q = (s: string) => JSON.stringify(s); // a TOML basic string

function containerdConfig(p: NodePaths, sandboxImage: string): string {
  const c = join(p.dir, 'containerd');
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = ${q(p.containerdRoot)}
state = ${q(p.containerdState)}
temp = ${q(join(c, 'tmp'))}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = ${q(p.containerdSocket)}

[ttrpc]
  address = ${q(`${p.containerdSocket}.ttrpc`)}

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(c, 'opt'))}

[${cri}]
  sandbox_image = ${q(sandboxImage)}
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this sandbox lacks.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[${cri}.cni]
  bin_dir = ${q(CNI_BIN_DIR)}
  conf_dir = ${q(join(p.dir, 'cni'))}

[${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[${cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = ${q(join(c, 'runc'))}
`;
}

function cniConfig(p: NodePaths, podCidr: string): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: p.cniNetwork,
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: podCidr }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: join(p.dir, 'cni-ipam'),
          },
        },
      ],
    },
    null,
    2,
  );
}

/** `ctr -a <socket> -n k8s.io ...` against a node's containerd. */
export function ctr(p: NodePaths, args: readonly string[], timeoutMs = 120_000) {
  return runCommand(CTR, ['-a', p.containerdSocket, '-n', 'k8s.io', ...args], { timeoutMs });
}

export async function startContainerd(o: {
  paths: NodePaths;
  net: NodeNetwork;
  sandboxImage: string;
  launch: ComponentLauncher;
}): Promise<ComponentProcess> {
  const p = o.paths;
  for (const d of ['containerd/root', 'containerd/tmp', 'containerd/opt', 'cni', 'cni-ipam'])
    await mkdir(join(p.dir, d), { recursive: true });
  await mkdir(p.containerdState, { recursive: true });
  const config = join(p.dir, 'containerd', 'config.toml');
  await writeFile(config, containerdConfig(p, o.sandboxImage));
  await writeFile(join(p.dir, 'cni', '10-dmtest.conflist'), cniConfig(p, o.net.podCidr));
  const proc = o.launch(`${o.net.name}-containerd`, CONTAINERD, ['--config', config], o.net.netnsPath);
  await waitUntil(proc, `containerd of ${o.net.name}`, 30_000, async () =>
    existsSync(p.containerdSocket)
      ? ctr(p, ['version'], 5000).then(
          () => true,
          () => false,
        )
      : false,
  );
  return proc;
}

/** Imports image archives into a node's containerd (namespace k8s.io, unpacked for overlayfs). */
export async function importImages(p: NodePaths, images: readonly TestImage[]): Promise<void> {
  for (const image of images) await ctr(p, ['images', 'import', image.archive], 600_000);
}

/**
 * Imports those of `images` that a node's containerd does not hold yet (by reference: test
 * image references name a hash of their content, so a present reference is the same image).
 */
export async function importMissingImages(p: NodePaths, images: readonly TestImage[]): Promise<void> {
  const present = new Set((await ctr(p, ['images', 'ls', '-q'])).stdout.split('\n'));
  await importImages(
    p,
    images.filter((i) => !present.has(i.ref)),
  );
}

/** Gives an imported image another name in a node's containerd (the same content). */
export async function tagImage(p: NodePaths, from: string, to: string): Promise<void> {
  await ctr(p, ['images', 'tag', '--force', from, to], 60_000);
}

/** Removes images from a node's containerd (a test undoing its imports; absent images, or a node removed already, are fine). */
export async function removeImages(p: NodePaths, images: readonly TestImage[]): Promise<void> {
  if (!existsSync(p.containerdSocket)) return;
  for (const image of images) await ctr(p, ['images', 'rm', image.ref], 60_000).catch(() => {});
}
