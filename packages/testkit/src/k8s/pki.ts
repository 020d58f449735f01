import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../process.ts';
import { makeTestCa, openTestCa } from '../test-ca.ts';
import { clusterNodeName, MAX_CLUSTER_NODES } from './network.ts';

/**
 * The test cluster's credentials, made with the openssl CLI (EC P-256, valid 2 days): one CA
 * that signs the API server's serving certificate, each kubelet's serving certificate and the
 * API server's client certificate for kubelets; a service-account key pair; and bearer tokens
 * (the API server's --token-auth-file) for the admin, the controller manager, the scheduler,
 * kube-proxy and each node (`system:node:<name>` in `system:nodes`, as the Node authorizer wants).
 * The API server reads its token file once: it holds a token for every node name the cluster
 * may ever have (`node-0`…`node-15`), so that nodes added later (added-nodes.ts) can register.
 */
export interface ClusterPki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly apiServerCert: string;
  readonly apiServerKey: string;
  /** The API server's client certificate towards kubelets (logs, exec). */
  readonly kubeletClientCert: string;
  readonly kubeletClientKey: string;
  readonly serviceAccountKey: string;
  readonly serviceAccountPub: string;
  /** The API server's --token-auth-file. */
  readonly tokenFile: string;
  readonly adminToken: string;
  readonly controllerManagerToken: string;
  readonly schedulerToken: string;
  /** system:kube-proxy (bound to system:node-proxier by the API server's bootstrap RBAC). */
  readonly kubeProxyToken: string;
  readonly nodes: ReadonlyMap<string, { readonly token: string; readonly servingCert: string; readonly servingKey: string }>;
}

export interface ClusterPkiOptions {
  readonly dir: string;
  /** IP addresses and DNS names the API server's certificate must hold. */
  readonly apiServerIPs: readonly string[];
  readonly nodes: readonly { readonly name: string; readonly ip: string }[];
}

const API_SERVER_NAMES = [
  'localhost',
  'kubernetes',
  'kubernetes.default',
  'kubernetes.default.svc',
  'kubernetes.default.svc.cluster.local',
];

export async function makeClusterPki(o: ClusterPkiOptions): Promise<ClusterPki> {
  const { dir } = o;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const f = (name: string) => join(dir, name);
  const ca = await makeTestCa(dir, 'dmtest-k8s-ca');
  const sign = (name: string, subject: string, ext: string) => ca.sign(name, subject, ext);
  const apiSans = [...o.apiServerIPs.map((ip) => `IP:${ip}`), 'IP:127.0.0.1', ...API_SERVER_NAMES.map((n) => `DNS:${n}`)];
  await sign('apiserver', '/CN=kube-apiserver', serverExtension(apiSans));
  await sign('apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'extendedKeyUsage=clientAuth\n');
  for (const n of o.nodes) await signKubeletCert(dir, n);
  await runCommand('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('sa.key')]);
  await runCommand('openssl', ['pkey', '-in', f('sa.key'), '-pubout', '-out', f('sa.pub')]);

  const token = () => randomBytes(24).toString('hex');
  const adminToken = token();
  const controllerManagerToken = token();
  const schedulerToken = token();
  const kubeProxyToken = token();
  const nodeTokens = new Map(Array.from({ length: MAX_CLUSTER_NODES }, (_, i) => [clusterNodeName(i), token()]));
  for (const n of o.nodes) if (!nodeTokens.has(n.name)) nodeTokens.set(n.name, token());
  const nodes = new Map(
    o.nodes.map((n) => [
      n.name,
      { token: nodeTokens.get(n.name)!, servingCert: f(`kubelet-${n.name}.pem`), servingKey: f(`kubelet-${n.name}.key`) },
    ]),
  );
  // token,user,uid,"group1,group2"
  const lines = [
    `${adminToken},dmtest-admin,dmtest-admin,"system:masters"`,
    `${controllerManagerToken},system:kube-controller-manager,system:kube-controller-manager`,
    `${schedulerToken},system:kube-scheduler,system:kube-scheduler`,
    `${kubeProxyToken},system:kube-proxy,system:kube-proxy`,
    ...[...nodeTokens].map(([name, t]) => `${t},system:node:${name},system:node:${name},"system:nodes"`),
  ];
  await writeFile(f('tokens.csv'), `${lines.join('\n')}\n`, { mode: 0o600 });
  return {
    dir,
    caCert: ca.caCert,
    caKey: ca.caKey,
    apiServerCert: f('apiserver.pem'),
    apiServerKey: f('apiserver.key'),
    kubeletClientCert: f('apiserver-kubelet-client.pem'),
    kubeletClientKey: f('apiserver-kubelet-client.key'),
    serviceAccountKey: f('sa.key'),
    serviceAccountPub: f('sa.pub'),
    tokenFile: f('tokens.csv'),
    adminToken,
    controllerManagerToken,
    schedulerToken,
    kubeProxyToken,
    nodes,
  };
}

const serverExtension = (sans: readonly string[]) =>
  `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n`;

async function signKubeletCert(pkiDir: string, n: { readonly name: string; readonly ip: string }) {
  return openTestCa(pkiDir).sign(
    `kubelet-${n.name}`,
    `/O=system:nodes/CN=system:node:${n.name}`,
    serverExtension([`IP:${n.ip}`, `DNS:${n.name}`]),
  );
}

/** What a kubelet and kube-proxy of the cluster need: the CA, their node's credentials, kube-proxy's token. */
export type NodePki = Pick<ClusterPki, 'caCert' | 'kubeProxyToken' | 'nodes'>;

/**
 * The credentials of a node added to a running cluster (another process may have made the
 * PKI): a kubelet serving certificate for its address, signed now, and the tokens of the
 * token file (its own, made at the start, and kube-proxy's).
 */
export async function addedNodePki(pkiDir: string, n: { readonly name: string; readonly ip: string }): Promise<NodePki> {
  const users = new Map(
    (await readFile(join(pkiDir, 'tokens.csv'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [token, user] = line.split(',');
        return [user ?? '', token ?? ''] as const;
      }),
  );
  const token = users.get(`system:node:${n.name}`);
  const kubeProxyToken = users.get('system:kube-proxy');
  if (!token || !kubeProxyToken) throw new Error(`the cluster's token file has no token for node ${n.name} or kube-proxy`);
  const cert = await signKubeletCert(pkiDir, n);
  return {
    caCert: join(pkiDir, 'ca.pem'),
    kubeProxyToken,
    nodes: new Map([[n.name, { token, servingCert: cert.cert, servingKey: cert.key }]]),
  };
}

/** A kubeconfig for `server` that trusts `caFile` and authenticates with a bearer token. */
export function kubeconfigYaml(o: { server: string; caFile: string; token: string; user: string }): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: dmtest',
    '  cluster:',
    `    server: ${o.server}`,
    `    certificate-authority: ${o.caFile}`,
    'users:',
    `- name: ${o.user}`,
    '  user:',
    `    token: ${o.token}`,
    'contexts:',
    '- name: dmtest',
    '  context:',
    '    cluster: dmtest',
    `    user: ${o.user}`,
    'current-context: dmtest',
    '',
  ].join('\n');
}
