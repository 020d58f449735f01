import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DotmeshError } from '@dotmesh/core';
import { etcdMemberFiles, resolveServerConfig, type ServerConfigInput } from '@dotmesh/rpc';
import {
  DEFAULT_CHECK_PORT,
  DEFAULT_CLUSTER_PORT,
  DEFAULT_ETCD_CLIENT_PORT,
  DEFAULT_ETCD_PEER_PORT,
  DEFAULT_RPC_PORT,
  DEFAULT_TLS_PORT,
  MAX_ETCD_MOVE_WAIT_SECONDS,
  MIN_ETCD_MOVE_WAIT_SECONDS,
  parseSize,
  poolSizeOnVolume,
} from '@dotmesh/rpc/server-defaults';
import { probeMemberData } from './etcd/member-probe.ts';
import { readRecoveryDir } from './etcd/recovery-dir.ts';
import { type RecoveryRole, type RecoveryStep, readRecoveryStep, requestRecoveryStep } from './etcd/recovery-journal.ts';
import { writeStrandedReport } from './etcd/stranded-report.ts';
import { createLogger } from './log.ts';
import { filesystemBytes } from './pool/volume-growth.ts';

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
 * go of the pool (unmounted, its loop device detached) so that the volume can move. A volume
 * whose config names another node address (adopted by a replacement node) serves there as the
 * same node: its config takes the new address and node name, and the server rejoins through
 * the join Secret (new certificates; its etcd member moves to the new peer URL), or — when the
 * pool's state holds the CA key (the cluster's first node) — issues them itself; without
 * either it is refused (CONFLICT). The pool on a volume follows the volume's size
 * (`--pool-size` is ignored there): it is made `poolSizeOnVolume(the volume's filesystem)` big
 * and grows online when the volume does (pool/volume-growth.ts).
 *
 * An etcd recovery (every node replaced at once; the operator decides it, see
 * docs/kubernetes.md): `--etcd-recovery-dir` is the operator's ConfigMap `dotmesh-etcd-recovery`
 * as mounted (etcd/recovery-dir.ts). Its decision gives this pool its part (`force-new-cluster`
 * or `rejoin`), recorded in its journal (etcd/recovery-journal.ts) once per id; a pool to rejoin
 * joins through its join Secret even when it holds the CA key (its member joins the recovered
 * cluster as a new one). Its `existing-pool-only`: a volume without a config is refused rather
 * than made a new cluster's first node (pods the operator makes while no server serves). A moved pool refused
 * for want of a join Secret leaves, with `terminationLog`, the report of its member's data
 * (etcd/stranded-report.ts) before it exits. `--etcd-move-wait-seconds` (the operator's
 * `pvcPerNode.etcdMoveWaitSeconds`) is the config's `etcdMoveWaitSeconds` at every start, the
 * default when absent: how long a moved pool's member waits for the other members.
 */
export const KUBERNETES_USAGE = `usage: dotmesh-server serve-kubernetes --node-name NAME --advertise-address IP --pool-dir DIR
       (--pool-size SIZE | --pool-volume-dir DIR) --admin-password-file FILE --admin-api-key-file FILE
       [--join-dir DIR] [--etcd-bin FILE] [--etcd-recovery-dir DIR] [--etcd-move-wait-seconds N]`;

export interface KubernetesNodeOptions {
  readonly nodeName: string;
  readonly advertiseAddress: string;
  readonly poolDir: string;
  /** The pool's size (undefined with poolVolumeDir: the pool follows the volume's size). */
  readonly poolSizeBytes: number | undefined;
  readonly adminPasswordFile: string;
  readonly adminApiKeyFile: string;
  /** The mounted join Secret's directory (absent or empty: the first node). */
  readonly joinDir: string | undefined;
  readonly etcdBin: string;
  /** The node's pool volume (a PVC): the pool file and the state live there (absent: in poolDir). */
  readonly poolVolumeDir: string | undefined;
  /** The operator's etcd recovery ConfigMap, mounted (its files absent while it has none). */
  readonly etcdRecoveryDir?: string | undefined;
  /** This pool's part in an etcd recovery, given directly (else read from etcdRecoveryDir). */
  readonly etcdRecovery?: { readonly id: string; readonly role: RecoveryRole } | undefined;
  /** Refuse a pool volume without a config (never start a new cluster); also set by etcdRecoveryDir. */
  readonly existingPoolOnly?: boolean;
  /** The container's termination message file (a stranded member's report goes there). */
  readonly terminationLog?: string | undefined;
  /** The config's etcdMoveWaitSeconds (undefined: the default, the field left out). */
  readonly etcdMoveWaitSeconds?: number | undefined;
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
      'etcd-recovery-dir': { type: 'string' },
      'etcd-move-wait-seconds': { type: 'string' },
    },
    strict: true,
  });
  const poolVolumeDir = values['pool-volume-dir'] || undefined;
  const need = [
    'node-name',
    'advertise-address',
    'pool-dir',
    ...(poolVolumeDir === undefined ? (['pool-size'] as const) : []),
    'admin-password-file',
    'admin-api-key-file',
  ] as const;
  const missing = need.filter((k) => typeof values[k] !== 'string' || values[k] === '');
  if (missing.length > 0)
    throw new DotmeshError('INVALID_ARGUMENT', `missing --${missing.join(', --')}`, { hint: KUBERNETES_USAGE });
  return {
    nodeName: values['node-name']!,
    advertiseAddress: values['advertise-address']!,
    poolDir: values['pool-dir']!,
    poolSizeBytes: poolVolumeDir === undefined ? parseSize(values['pool-size']!) : undefined,
    adminPasswordFile: values['admin-password-file']!,
    adminApiKeyFile: values['admin-api-key-file']!,
    joinDir: values['join-dir'],
    etcdBin: values['etcd-bin']!,
    poolVolumeDir,
    etcdRecoveryDir: values['etcd-recovery-dir'] || undefined,
    etcdMoveWaitSeconds: parseMoveWait(values['etcd-move-wait-seconds']),
  };
}

/** `--etcd-move-wait-seconds`: a whole number of seconds in the config's range (undefined: not given). */
function parseMoveWait(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seconds = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(seconds >= MIN_ETCD_MOVE_WAIT_SECONDS && seconds <= MAX_ETCD_MOVE_WAIT_SECONDS)) {
    throw new DotmeshError(
      'INVALID_ARGUMENT',
      `--etcd-move-wait-seconds ${JSON.stringify(text)} must be a whole number of seconds from ${MIN_ETCD_MOVE_WAIT_SECONDS} to ${MAX_ETCD_MOVE_WAIT_SECONDS}`,
      { hint: "the operator sets it from the ConfigMap's pvcPerNode.etcdMoveWaitSeconds" },
    );
  }
  return seconds;
}

/** The size of a new pool on the volume at `dir`; refused when the volume is too small for one. */
async function poolSizeForVolume(dir: string): Promise<number> {
  const volume = await filesystemBytes(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
    throw new DotmeshError('INVALID_ARGUMENT', `the pool volume directory ${dir} does not exist`, {
      hint: 'mount the pool PVC there (the operator does: docs/kubernetes.md, "Pools on PVCs")',
    });
  });
  const size = poolSizeOnVolume(volume);
  if (size < 128 * 2 ** 20) {
    throw new DotmeshError('INVALID_ARGUMENT', `the pool volume at ${dir} holds ${volume} bytes: too small for a pool`, {
      hint: "give pool PVCs at least 512M (the operator ConfigMap's pvcPerNode.pvSizePerNode)",
    });
  }
  return size;
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
  const directive = o.etcdRecoveryDir
    ? await readRecoveryDir(o.etcdRecoveryDir, etcdMemberFiles({ stateDir }).statusFile)
    : undefined;
  const recovery = o.etcdRecovery ?? directive?.step;
  if (existing !== undefined) {
    const current = await applyMoveWait(existing, configFile, o);
    if (o.poolVolumeDir !== undefined) {
      const step = recovery ? await requestRecoveryStep(stateDir, recovery.id, recovery.role) : await readRecoveryStep(stateDir);
      await readdressMovedVolume(current, configFile, stateDir, o, step?.role === 'rejoin' && !step.done ? step : undefined);
    }
    return configFile;
  }
  if (o.existingPoolOnly || directive?.existingPoolOnly) {
    throw new DotmeshError(
      'CONFLICT',
      `the pool volume at ${o.poolVolumeDir ?? o.poolDir} holds no pool of this cluster, and this server may only serve an existing one`,
      { hint: 'the operator makes such a pod while no server serves; it is made again once one does' },
    );
  }
  const join_ = await readJoinSecret(o.joinDir);
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
    poolSizeBytes: o.poolVolumeDir === undefined ? o.poolSizeBytes! : await poolSizeForVolume(o.poolVolumeDir),
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
    ...(o.etcdMoveWaitSeconds === undefined ? {} : { etcdMoveWaitSeconds: o.etcdMoveWaitSeconds }),
  };
  const config = resolveServerConfig(input);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writePrivate(config.initialAdminFile, `${JSON.stringify({ password, apiKey })}\n`);
  if (join_) await writePrivate(config.joinTokenFile, `${join_.token}\n`);
  await writePrivate(configFile, `${JSON.stringify(input, null, 2)}\n`);
  return configFile;
}

/**
 * An existing config takes the pod's etcdMoveWaitSeconds (or loses the field: the default),
 * replaced atomically when that changes it; the config's text after that. A config that is not
 * JSON is left as it is (the server reports it).
 */
async function applyMoveWait(configText: string, configFile: string, o: KubernetesNodeOptions): Promise<string> {
  let written: unknown;
  try {
    written = JSON.parse(configText);
  } catch {
    return configText;
  }
  if (typeof written !== 'object' || written === null || Array.isArray(written)) return configText;
  const { etcdMoveWaitSeconds: was, ...rest } = written as Record<string, unknown>;
  if (was === o.etcdMoveWaitSeconds) return configText;
  const next = { ...rest, ...(o.etcdMoveWaitSeconds === undefined ? {} : { etcdMoveWaitSeconds: o.etcdMoveWaitSeconds }) };
  const text = `${JSON.stringify(next, null, 2)}\n`;
  await writePrivate(configFile, text);
  return text;
}

interface JoinSecret {
  readonly token: string;
  readonly address: string;
  readonly caHash: string;
}

/** The mounted join Secret (undefined: none mounted). */
async function readJoinSecret(joinDir: string | undefined): Promise<JoinSecret | undefined> {
  if (!joinDir) return undefined;
  const [token, address, caHash] = await Promise.all(['token', 'address', 'ca-hash'].map((k) => readOptional(join(joinDir, k))));
  if (!token || !address || !caHash) {
    throw new DotmeshError('INVALID_ARGUMENT', `the join Secret in ${joinDir} lacks token, address or ca-hash`, {
      hint: 'the operator writes it; delete the pod so that it is made again',
    });
  }
  return { token, address, caHash };
}

/**
 * A pool volume whose config or node certificate names another node address, or whose config
 * names another pool directory (a replacement node adopted it; or an earlier start here stopped
 * before its rejoin was done): the config takes this node's address, name and pool directory
 * (where the pool is mounted for its kubelet), and the server serves the pool as the same node.
 * Its certificates name the old address: a state holding the CA key issues them again itself;
 * else the server rejoins through the join Secret (the token file and `join` in the config; the
 * join endpoint lets it in once the old node's lease expired). The config is replaced
 * atomically, after the token file: a kill in between leaves the old config, done again next.
 */
async function readdressMovedVolume(
  configText: string,
  configFile: string,
  stateDir: string,
  o: KubernetesNodeOptions,
  rejoining: RecoveryStep | undefined,
): Promise<void> {
  let written: ServerConfigInput & { advertiseAddress?: unknown; nodeName?: unknown };
  try {
    written = JSON.parse(configText) as typeof written;
  } catch {
    return; // the server reports a damaged config itself
  }
  if (written.advertiseAddress === undefined) return;
  const nodeCert = await readFile(join(stateDir, 'tls', 'node.pem')).then(
    (pem) => new X509Certificate(pem),
    () => undefined,
  );
  const certHere = nodeCert?.subjectAltName?.split(', ').includes(`IP Address:${o.advertiseAddress}`) ?? true;
  if (written.advertiseAddress === o.advertiseAddress && certHere && written.poolDir === o.poolDir && !rejoining) return;
  const secret = await readJoinSecret(o.joinDir);
  const holdsCaKey = await readOptional(join(stateDir, 'tls', 'ca-key.pem')).then((k) => k !== undefined);
  if (rejoining && secret === undefined) {
    throw new DotmeshError(
      'CONFLICT',
      `etcd recovery ${rejoining.id}: this pool's etcd member joins the recovered cluster as a new member, and this pod has no join Secret`,
      { hint: 'the operator makes the join Secrets once the recovered node serves, and this pod again with one' },
    );
  }
  if (!holdsCaKey && secret === undefined) {
    if (o.terminationLog) await reportIfMember(stateDir, o, (written as { etcdEndpoints?: unknown }).etcdEndpoints);
    throw new DotmeshError(
      'CONFLICT',
      `the pool volume at ${o.poolVolumeDir} belongs to node ${String(written.nodeName)} at ${String(written.advertiseAddress)}; this is node ${o.nodeName} at ${o.advertiseAddress}, with no join Secret to get its certificates for the new address`,
      { hint: 'the operator gives a node without a server pod a join Secret: delete this pod so that it is made again' },
    );
  }
  const next: ServerConfigInput = {
    ...written,
    // The pool is mounted under this node's pool directory, where its kubelet and pods see it.
    poolDir: o.poolDir,
    nodeName: o.nodeName,
    listenHost: o.advertiseAddress,
    advertiseAddress: o.advertiseAddress,
    ...((holdsCaKey && !rejoining) || secret === undefined ? {} : { join: { address: secret.address, caHash: secret.caHash } }),
  };
  const config = resolveServerConfig(next);
  if ((!holdsCaKey || rejoining) && secret) await writePrivate(config.joinTokenFile, `${secret.token}\n`);
  await writePrivate(configFile, `${JSON.stringify(next, null, 2)}\n`);
}

/**
 * A pool moved with no join Secret (no node serves to make one: every node was replaced at
 * once): when it holds an etcd member's data, what the data holds goes to the termination
 * message for the operator (its etcd recovery). A probe that fails is logged, not fatal: the
 * refusal that follows says what to do.
 */
async function reportIfMember(stateDir: string, o: KubernetesNodeOptions, endpoints: unknown): Promise<void> {
  const files = etcdMemberFiles({ stateDir });
  const name = await readFile(files.statusFile, 'utf8').then(
    (t) => (JSON.parse(t) as { name?: unknown }).name,
    () => undefined,
  );
  if (typeof name !== 'string' || name === '') return;
  try {
    const state = await probeMemberData({
      bin: o.etcdBin,
      name,
      dataDir: files.dataDir,
      tls: { ca: files.ca, cert: files.cert, key: files.key },
      logger: createLogger({ destination: 2 }),
    });
    await writeStrandedReport(o.terminationLog!, {
      nodeId: name,
      state,
      holdsCaKey: false,
      statusFile: files.statusFile,
      knownEndpoints: Array.isArray(endpoints) ? endpoints.filter((e): e is string => typeof e === 'string') : [],
    });
  } catch (e) {
    process.stderr.write(`dotmesh-server: cannot read this pool's etcd member data for the operator: ${(e as Error).message}\n`);
  }
}
