import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DotmeshError } from '@dotmesh/core';
import { resolveServerConfig, type ServerConfigInput } from '@dotmesh/rpc';
import {
  DEFAULT_CHECK_PORT,
  DEFAULT_CLUSTER_PORT,
  DEFAULT_ETCD_CLIENT_PORT,
  DEFAULT_ETCD_PEER_PORT,
  DEFAULT_RPC_PORT,
  DEFAULT_TLS_PORT,
  parseSize,
} from '@dotmesh/rpc/server-defaults';

/**
 * `dotmesh-server serve-kubernetes`: the server of one node, as the operator runs it in a pod.
 * At its first start (no config in its pool directory) it writes the config `dm cluster init`
 * or `dm cluster join` would have written: a node of a cluster on the shared store with a
 * managed etcd member, listening on its node's address only, the initial admin credentials
 * from the user's Secret files, and — when the operator mounted a join Secret (`token`,
 * `address`, `ca-hash`) — the join target and its single-use token. Without a join Secret it
 * is the cluster's first node (it makes the cluster CA and the first etcd member). Later starts
 * find the config and come back as the same node (the join Secret is then not read).
 *
 * With `--pool-volume-dir` (the operator's `storageMode: pvcPerNode`: the node's pool PVC) the
 * pool file (preallocated: the volume is the pool's alone) and the state directory (config,
 * certificates, the etcd member's data) live on that volume and move with it; the pool's mount
 * point stays under `--pool-dir`, where the kubelet sees the dots, and a stopping server lets
 * go of the pool (unmounted, its loop device detached) so that the volume can move. A volume whose config names
 * another node address is refused: a pool moved to a node with another address needs its node
 * and etcd certificates and its etcd member's peer URL changed, which is not built yet.
 */
export const KUBERNETES_USAGE = `usage: dotmesh-server serve-kubernetes --node-name NAME --advertise-address IP --pool-dir DIR
       --pool-size SIZE --admin-password-file FILE --admin-api-key-file FILE [--join-dir DIR]
       [--etcd-bin FILE] [--pool-volume-dir DIR]`;

export interface KubernetesNodeOptions {
  readonly nodeName: string;
  readonly advertiseAddress: string;
  readonly poolDir: string;
  readonly poolSizeBytes: number;
  readonly adminPasswordFile: string;
  readonly adminApiKeyFile: string;
  /** The mounted join Secret's directory (absent or empty: the first node). */
  readonly joinDir: string | undefined;
  readonly etcdBin: string;
  /** The node's pool volume (a PVC): the pool file and the state live there (absent: in poolDir). */
  readonly poolVolumeDir: string | undefined;
}

export function parseKubernetesArgs(argv: readonly string[]): KubernetesNodeOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'node-name': { type: 'string' },
      'advertise-address': { type: 'string' },
      'pool-dir': { type: 'string' },
      'pool-size': { type: 'string' },
      'admin-password-file': { type: 'string' },
      'admin-api-key-file': { type: 'string' },
      'join-dir': { type: 'string' },
      'etcd-bin': { type: 'string', default: 'etcd' },
      'pool-volume-dir': { type: 'string' },
    },
    strict: true,
  });
  const need = ['node-name', 'advertise-address', 'pool-dir', 'pool-size', 'admin-password-file', 'admin-api-key-file'] as const;
  const missing = need.filter((k) => typeof values[k] !== 'string' || values[k] === '');
  if (missing.length > 0)
    throw new DotmeshError('INVALID_ARGUMENT', `missing --${missing.join(', --')}`, { hint: KUBERNETES_USAGE });
  return {
    nodeName: values['node-name']!,
    advertiseAddress: values['advertise-address']!,
    poolDir: values['pool-dir']!,
    poolSizeBytes: parseSize(values['pool-size']!),
    adminPasswordFile: values['admin-password-file']!,
    adminApiKeyFile: values['admin-api-key-file']!,
    joinDir: values['join-dir'],
    etcdBin: values['etcd-bin']!,
    poolVolumeDir: values['pool-volume-dir'] || undefined,
  };
}

async function readOptional(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').then(
    (s) => s.trim(),
    () => undefined,
  );
}

async function writePrivate(file: string, text: string): Promise<void> {
  await writeFile(`${file}.new`, text, { mode: 0o600 });
  await rename(`${file}.new`, file);
}

/** Writes the node's config at its first start; returns the config file's path either way. */
export async function prepareKubernetesNode(o: KubernetesNodeOptions): Promise<string> {
  const stateDir = join(o.poolVolumeDir ?? o.poolDir, 'server');
  const configFile = join(stateDir, 'config.json');
  const existing = await readOptional(configFile);
  if (existing !== undefined) {
    if (o.poolVolumeDir !== undefined) refuseMovedVolume(existing, o);
    return configFile;
  }
  const join_ = o.joinDir
    ? {
        token: await readOptional(join(o.joinDir, 'token')),
        address: await readOptional(join(o.joinDir, 'address')),
        caHash: await readOptional(join(o.joinDir, 'ca-hash')),
      }
    : undefined;
  if (join_ && (!join_.token || !join_.address || !join_.caHash)) {
    throw new DotmeshError('INVALID_ARGUMENT', `the join Secret in ${o.joinDir} lacks token, address or ca-hash`, {
      hint: 'the operator writes it; delete the pod so that it is made again',
    });
  }
  const [password, apiKey] = await Promise.all([readOptional(o.adminPasswordFile), readOptional(o.adminApiKeyFile)]);
  if (!password || !apiKey) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `${o.adminPasswordFile} and ${o.adminApiKeyFile} must hold the admin's password and API key`,
      {
        hint: 'create the Secret dotmesh with dotmesh-admin-password.txt and dotmesh-api-key.txt (docs/kubernetes.md)',
      },
    );
  }
  const input: ServerConfigInput = {
    poolDir: o.poolDir,
    poolSizeBytes: o.poolSizeBytes,
    sparse: o.poolVolumeDir === undefined,
    ...(o.poolVolumeDir === undefined
      ? {}
      : { poolFile: join(o.poolVolumeDir, 'dotmesh_data'), stateDir, releasePoolAtStop: true }),
    nodeName: o.nodeName,
    listenHost: o.advertiseAddress,
    advertiseAddress: o.advertiseAddress,
    port: DEFAULT_RPC_PORT,
    checkPort: DEFAULT_CHECK_PORT,
    tlsPort: DEFAULT_TLS_PORT,
    clusterPort: DEFAULT_CLUSTER_PORT,
    store: 'etcd',
    etcdMember: { bin: o.etcdBin, clientPort: DEFAULT_ETCD_CLIENT_PORT, peerPort: DEFAULT_ETCD_PEER_PORT },
    join: join_ ? { address: join_.address!, caHash: join_.caHash! } : null,
    // No Docker in a Kubernetes node's pod: no volume plugin socket.
    dockerPluginSocket: null,
  };
  const config = resolveServerConfig(input);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writePrivate(config.initialAdminFile, `${JSON.stringify({ password, apiKey })}\n`);
  if (join_) await writePrivate(config.joinTokenFile, `${join_.token}\n`);
  await writePrivate(configFile, `${JSON.stringify(input, null, 2)}\n`);
  return configFile;
}

/** Refuses a pool volume whose config was written on a node at another address (see above). */
function refuseMovedVolume(configText: string, o: KubernetesNodeOptions): void {
  let written: { advertiseAddress?: unknown; nodeName?: unknown };
  try {
    written = JSON.parse(configText) as typeof written;
  } catch {
    return; // the server reports a damaged config itself
  }
  if (written.advertiseAddress === undefined || written.advertiseAddress === o.advertiseAddress) return;
  throw new DotmeshError(
    'CONFLICT',
    `the pool volume at ${o.poolVolumeDir} belongs to node ${String(written.nodeName)} at ${String(written.advertiseAddress)}; this is node ${o.nodeName} at ${o.advertiseAddress}`,
    {
      hint: 'a pool adopted by a node with another address cannot serve yet (its certificates and etcd peer URL name the old address): keep the node address, or restore the dots from a push to another cluster',
    },
  );
}
