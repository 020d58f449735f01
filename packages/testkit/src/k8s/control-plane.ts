import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { freePorts } from '../ports.ts';
import type { TrackedProcess } from '../process.ts';
import { type ClusterPki, kubeconfigYaml } from './pki.ts';
import { type ComponentLauncher, waitUntil } from './process-log.ts';
import type { K8sTools } from './tools.ts';

/**
 * The test cluster's control plane, in the root network namespace: etcd 3.6 on 127.0.0.1
 * (random ports, --unsafe-no-fsync: test data), kube-apiserver on the bridge address (so the
 * nodes reach it; the kubelets' addresses are reached back through the bridge), and
 * kube-controller-manager and kube-scheduler on 127.0.0.1 talking to it with tokens.
 */
export interface ControlPlane {
  /** `https://<bridge address>:<port>` */
  readonly apiServerUrl: string;
  readonly apiServerPort: number;
  readonly etcdUrl: string;
  /** A kubeconfig with the admin token (system:masters). */
  readonly adminKubeconfig: string;
  readonly processes: readonly TrackedProcess[];
}

export interface ControlPlaneOptions {
  readonly tools: K8sTools;
  readonly pki: ClusterPki;
  readonly dir: string;
  /** The bridge address the API server binds and advertises. */
  readonly address: string;
  readonly serviceCidr: string;
  readonly clusterCidr: string;
  readonly launch: ComponentLauncher;
  /** Fixed ports (tests leave them out: free ones are picked). */
  readonly ports?: { apiServer?: number; etcdClient?: number; etcdPeer?: number; controllerManager?: number; scheduler?: number };
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const { tools, pki, dir, address } = o;
  const free = await freePorts(5);
  const port = (fixed: number | undefined, i: number) => fixed ?? free[i]!;
  const p = o.ports ?? {};
  const [apiPort, etcdClient, etcdPeer, kcmPort, schedPort] = [
    port(p.apiServer, 0),
    port(p.etcdClient, 1),
    port(p.etcdPeer, 2),
    port(p.controllerManager, 3),
    port(p.scheduler, 4),
  ];
  const etcdUrl = `http://127.0.0.1:${etcdClient}`;
  const peerUrl = `http://127.0.0.1:${etcdPeer}`;
  const etcd = o.launch('etcd', tools.bin('etcd'), [
    '--name=dmtest',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=dmtest=${peerUrl}`,
    '--initial-cluster-state=new',
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);
  await waitUntil(etcd, `etcd at ${etcdUrl}`, 30_000, () => httpOk(`${etcdUrl}/health`));

  const apiServerUrl = `https://${address}:${apiPort}`;
  const apiserver = o.launch('kube-apiserver', tools.bin('kube-apiserver'), [
    `--etcd-servers=${etcdUrl}`,
    `--bind-address=${address}`,
    `--advertise-address=${address}`,
    `--secure-port=${apiPort}`,
    `--cert-dir=${join(dir, 'apiserver')}`,
    `--tls-cert-file=${pki.apiServerCert}`,
    `--tls-private-key-file=${pki.apiServerKey}`,
    `--client-ca-file=${pki.caCert}`,
    `--token-auth-file=${pki.tokenFile}`,
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-cluster-ip-range=${o.serviceCidr}`,
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--allow-privileged=true',
    '--kubelet-preferred-address-types=InternalIP,Hostname',
    // Webhooks and aggregated APIs by their endpoints (pod addresses, routed through the
    // bridge), not by Service addresses, which only the nodes translate.
    '--enable-aggregator-routing=true',
    `--kubelet-certificate-authority=${pki.caCert}`,
    `--kubelet-client-certificate=${pki.kubeletClientCert}`,
    `--kubelet-client-key=${pki.kubeletClientKey}`,
    '--profiling=false',
    '--v=1',
  ]);
  const adminToken = pki.adminToken;
  await waitUntil(apiserver, `kube-apiserver at ${apiServerUrl}`, 60_000, () =>
    httpsOk(`${apiServerUrl}/readyz`, pki.caCert, adminToken),
  );

  const kubeconfig = async (name: string, token: string, user: string) => {
    const path = join(dir, `${name}.kubeconfig`);
    await writeFile(path, kubeconfigYaml({ server: apiServerUrl, caFile: pki.caCert, token, user }), { mode: 0o600 });
    return path;
  };
  const adminKubeconfig = await kubeconfig('admin', adminToken, 'dmtest-admin');
  const kcmConfig = await kubeconfig('controller-manager', pki.controllerManagerToken, 'system:kube-controller-manager');
  const schedConfig = await kubeconfig('scheduler', pki.schedulerToken, 'system:kube-scheduler');
  const kcm = o.launch('kube-controller-manager', tools.bin('kube-controller-manager'), [
    `--kubeconfig=${kcmConfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${kcmPort}`,
    `--cert-dir=${join(dir, 'controller-manager')}`,
    `--service-account-private-key-file=${pki.serviceAccountKey}`,
    `--root-ca-file=${pki.caCert}`,
    `--cluster-signing-cert-file=${pki.caCert}`,
    `--cluster-signing-key-file=${pki.caKey}`,
    '--use-service-account-credentials=true',
    `--cluster-cidr=${o.clusterCidr}`,
    `--service-cluster-ip-range=${o.serviceCidr}`,
    // The PV binder's periodic pass (default 15 s): a claim and a pre-bound PV created in quick
    // succession are sometimes bound only by it; tests wait for such bindings.
    '--pvclaimbinder-sync-period=2s',
    // A node whose lease is not renewed for 20 s is NotReady (default 50 s): tests that lose a
    // node wait for that. Its kubelets renew every 3 s (nodeLeaseDurationSeconds 12, kubelet.ts),
    // so a busy machine has ~6 renewals of slack before a live node would flap.
    '--node-monitor-grace-period=20s',
    '--node-monitor-period=2s',
    '--profiling=false',
    '--v=1',
  ]);
  const sched = o.launch('kube-scheduler', tools.bin('kube-scheduler'), [
    `--kubeconfig=${schedConfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${schedPort}`,
    '--profiling=false',
    '--v=1',
  ]);
  await Promise.all([
    waitUntil(kcm, 'kube-controller-manager healthz', 60_000, () => httpsOk(`https://127.0.0.1:${kcmPort}/healthz`)),
    waitUntil(sched, 'kube-scheduler healthz', 60_000, () => httpsOk(`https://127.0.0.1:${schedPort}/healthz`)),
  ]);
  return { apiServerUrl, apiServerPort: apiPort, etcdUrl, adminKubeconfig, processes: [etcd, apiserver, kcm, sched] };
}

/** GET `url` over plain HTTP: true on a 200. */
export async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  return res?.status === 200;
}

/**
 * GET `url` over HTTPS, trusting `caFile` (or, without one, accepting the self-signed
 * certificate of a component's local health endpoint), with an optional bearer token.
 */
export async function httpsOk(url: string, caFile?: string, token?: string): Promise<boolean> {
  const ca = caFile === undefined ? undefined : await readFile(caFile);
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        timeout: 2000,
        ...(ca ? { ca } : { rejectUnauthorized: false }),
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
