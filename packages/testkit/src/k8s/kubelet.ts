import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCgroupRoot } from './cgroups.ts';
import type { NodeNetwork } from './network.ts';
import type { NodePaths } from './node.ts';
import { kubeconfigYaml, type NodePki } from './pki.ts';
import { type ComponentLauncher, type ComponentProcess, waitUntil } from './process-log.ts';
import type { K8sTools } from './tools.ts';

/**
 * A node's kubelet and kube-proxy, both started inside the node's network namespace with
 * `nsenter --net` (see node.ts for its containerd and the paths).
 */
function kubeletConfig(p: NodePaths, net: NodeNetwork, pki: NodePki, ports: { kubelet: number; healthz: number }): string {
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
      // Each pod is synced again every 10–15 s (default 1–1.5 min): a volume grown online
      // (NodeExpandVolume of a mounted PVC) is expanded by the kubelet at its pod's next sync,
      // so a test that raises a PVC's size waits seconds, not a minute.
      syncFrequency: '10s',
      // The lease is renewed every quarter of it (3 s); the controller manager's
      // --node-monitor-grace-period (20 s, control-plane.ts) marks a silent node NotReady.
      nodeLeaseDurationSeconds: 12,
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
  readonly pki: NodePki;
  readonly apiServerUrl: string;
  readonly launch: ComponentLauncher;
  readonly ports: { kubelet: number; healthz: number };
  /** Labels the node registers with, beside `dotmesh.test/node=<name>`. */
  readonly labels?: Readonly<Record<string, string>>;
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
      `--node-labels=${Object.entries({ 'dotmesh.test/node': net.name, ...o.labels })
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}`,
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
  pki: NodePki;
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
