import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../process.ts';
import { createCgroupRoot } from './cgroups.ts';
import type { TestImage } from './images.ts';
import type { NodeNetwork } from './network.ts';
import type { ClusterPki } from './pki.ts';
import { kubeconfigYaml } from './pki.ts';
import { type ComponentLauncher, type ComponentProcess, waitUntil } from './process-log.ts';
import type { K8sTools } from './tools.ts';

/**
 * One node of the test cluster: its own containerd (Debian's 1.6, own root, state, socket,
 * runc root, CNI configuration) and a kubelet, both started inside the node's network
 * namespace (`nsenter --net`, which keeps the shared mount namespace: `ip netns exec` would
 * remount /sys), with its own cgroup root, kubelet root-dir, pod-log and FlexVolume
 * directories. Paths are under `dir`.
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

function kubeletConfig(p: NodePaths, net: NodeNetwork, pki: ClusterPki, ports: { kubelet: number; healthz: number }): string {
  const node = pki.nodes.get(net.name)!;
  // JSON is YAML: no YAML library needed for a config file.
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      address: net.ip,
      port: ports.kubelet,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort: ports.healthz,
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: pki.caCert } },
      authorization: { mode: 'Webhook' },
      tlsCertFile: node.servingCert,
      tlsPrivateKeyFile: node.servingKey,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: `/${p.cgroupRoot}`,
      failCgroupV1: false,
      failSwapOn: false,
      containerRuntimeEndpoint: `unix://${p.containerdSocket}`,
      podLogsDir: p.podLogsDir,
      volumePluginDir: p.flexVolumeDir,
      clusterDomain: 'cluster.local',
      resolvConf: '/etc/resolv.conf',
      serializeImagePulls: false,
      // The machine is shared: never evict or garbage-collect the imported images over the
      // host's disk or memory use.
      evictionHard: {
        'memory.available': '100Mi',
        'nodefs.available': '1%',
        'nodefs.inodesFree': '1%',
        'imagefs.available': '1%',
      },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
    },
    null,
    2,
  );
}

export interface KubeletOptions {
  readonly tools: K8sTools;
  readonly paths: NodePaths;
  readonly net: NodeNetwork;
  readonly pki: ClusterPki;
  readonly apiServerUrl: string;
  readonly launch: ComponentLauncher;
  readonly ports: { kubelet: number; healthz: number };
}

/** Starts the kubelet (after `createCgroupRoot`); the caller waits for the Node to be Ready. */
export async function startKubelet(o: KubeletOptions): Promise<ComponentProcess> {
  const { paths: p, net, pki } = o;
  for (const d of [p.kubeletRootDir, p.podLogsDir, p.flexVolumeDir]) await mkdir(d, { recursive: true });
  await createCgroupRoot(p.cgroupRoot);
  const config = join(p.dir, 'kubelet-config.yaml');
  await writeFile(config, kubeletConfig(p, net, pki, o.ports));
  const kubeconfig = join(p.dir, 'kubelet.kubeconfig');
  const token = pki.nodes.get(net.name)!.token;
  await writeFile(
    kubeconfig,
    kubeconfigYaml({ server: o.apiServerUrl, caFile: pki.caCert, token, user: `system:node:${net.name}` }),
    {
      mode: 0o600,
    },
  );
  return o.launch(
    `${net.name}-kubelet`,
    o.tools.bin('kubelet'),
    [
      `--config=${config}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${p.kubeletRootDir}`,
      `--hostname-override=${net.name}`,
      `--node-ip=${net.ip}`,
      `--node-labels=dotmesh.test/node=${net.name}`,
      '--v=1',
    ],
    net.netnsPath,
  );
}

/**
 * kube-proxy (iptables mode, in the node's namespace: its rules are the namespace's own) makes
 * Services work as in a real cluster: ClusterIPs and NodePorts on the node address, and the
 * `kubernetes` Service that in-cluster clients find through KUBERNETES_SERVICE_HOST. It changes
 * no host-wide setting: the conntrack sizes and timeouts it would set are left alone (0).
 */
export async function startKubeProxy(o: {
  tools: K8sTools;
  paths: NodePaths;
  net: NodeNetwork;
  pki: ClusterPki;
  apiServerUrl: string;
  clusterCidr: string;
  launch: ComponentLauncher;
}): Promise<ComponentProcess> {
  const { paths: p, net } = o;
  const kubeconfig = join(p.dir, 'kube-proxy.kubeconfig');
  await writeFile(
    kubeconfig,
    kubeconfigYaml({ server: o.apiServerUrl, caFile: o.pki.caCert, token: o.pki.kubeProxyToken, user: 'system:kube-proxy' }),
    {
      mode: 0o600,
    },
  );
  const config = join(p.dir, 'kube-proxy-config.yaml');
  await writeFile(
    config,
    JSON.stringify(
      {
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clientConnection: { kubeconfig },
        mode: 'iptables',
        hostnameOverride: net.name,
        bindAddress: net.ip,
        clusterCIDR: o.clusterCidr,
        nodePortAddresses: [`${net.ip}/32`],
        healthzBindAddress: '127.0.0.1:10256',
        metricsBindAddress: '127.0.0.1:10249',
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
      },
      null,
      2,
    ),
  );
  const proc = o.launch(`${net.name}-kube-proxy`, o.tools.bin('kube-proxy'), [`--config=${config}`, '--v=1'], net.netnsPath);
  await waitUntil(proc, `kube-proxy of ${net.name} to sync its rules`, 60_000, () =>
    net.exec('curl', ['-sf', '-o', '/dev/null', 'http://127.0.0.1:10256/healthz'], { timeoutMs: 5000 }).then(
      () => true,
      () => false,
    ),
  );
  return proc;
}
