import { createHash } from 'node:crypto';
import { DEFAULT_ETCD_MOVE_WAIT_SECONDS } from '@dotmesh/rpc/server-defaults';
import type { V1EnvVar, V1Lifecycle, V1Pod } from '@kubernetes/client-node';
import { flexvolumeDirFor, kubeletRootDirFor, type OperatorConfig, poolLocationFor } from './config.ts';
import { csiNodeContainer } from './csi-node.ts';

/**
 * The dotmesh-server pod the operator keeps on each selected node (not a DaemonSet: the
 * original's rule, so that upgrades and node selection are the operator's decisions). Named and
 * labelled as the original's: `server-<node>`, `dotmesh.io/role=dotmesh-server`,
 * `dotmesh.io/node=<node>`. Privileged with the host's PID and network namespaces: the server
 * attaches a loop device, mounts its btrfs pool (propagated to the host, where the kubelet and
 * other pods see the dots), and binds its API (32607) on its node's address.
 *
 * It also serves the FlexVolume driver `dotmesh.io/dm`: the server installs the driver (the
 * image's `dotmesh-flexvolume`) and its socket into the node's FlexVolume directory
 * (`DOTMESH_FLEXVOLUME_DIR`). The driver runs on the host and binds the paths the server
 * answers, so the pod sees the host's paths at the same place: the FlexVolume directory, the
 * pool directory (Bidirectional: the server's btrfs mounts are the host's) and, read-only, the
 * kubelet's root directory (a use whose volume directory the kubelet removed while the server
 * was down is ended when it starts).
 *
 * Its second container is the CSI driver's node plugin (csi-node.ts).
 * It outlives the pods using its dots when its node is drained: its preStop hook
 * (`dotmesh-server pre-stop`) waits, when the pod is evicted, until no use of the node's dots is
 * left (bounded: PRESTOP_TIMEOUT_SECONDS, within the grace period); a plain delete (the
 * operator's replacement) stops at once. The hook reads its own pod with the pod's
 * service-account token (the original's ClusterRole `dotmesh` may get pods). The pod's
 * controller is its Node (an owner reference, as the kubelet's mirror pods have), so that
 * `kubectl drain` evicts it without `--force` and the pod goes with a deleted node.
 */
export const ROLE_LABEL = 'dotmesh.io/role';
export const SERVER_ROLE = 'dotmesh-server';
export const NODE_LABEL = 'dotmesh.io/node';
/** A hash of everything the operator decided about the pod: a different hash means replace it. */
export const SPEC_HASH_ANNOTATION = 'dotmesh.io/spec-hash';
/** The user's Secret (original name and keys): mounted as files, never put in env. */
export const ADMIN_SECRET = 'dotmesh';
export const ADMIN_PASSWORD_KEY = 'dotmesh-admin-password.txt';
export const ADMIN_API_KEY_KEY = 'dotmesh-api-key.txt';
export const SECRET_MOUNT = '/secret';
export const SERVER_PORT = 32607;
export const SERVER_SERVICE_ACCOUNT = 'dotmesh';
/** The server's environment variable naming the FlexVolume directory it installs the driver in. */
export const FLEXVOLUME_DIR_ENV = 'DOTMESH_FLEXVOLUME_DIR';
/** The server's liveness port (GET /check), on its node's address. */
export const CHECK_PORT = 32608;
/** The etcd binary of the server image (each server runs its node's managed etcd member). */
export const SERVER_ETCD_BIN = '/usr/local/bin/etcd';
/** A node's join Secret (keys `token`, `address`, `ca-hash`), made by the operator. */
export const JOIN_SECRET_LABEL = 'dotmesh.io/join-for';
export const JOIN_MOUNT = '/dotmesh-join';
/** How long the preStop hook waits for the node's dots to be unused, and the grace around it. */
export const PRESTOP_TIMEOUT_SECONDS = 100;
export const TERMINATION_GRACE_SECONDS = 120;

export function joinSecretName(node: string): string {
  return `dotmesh-join-${node}`;
}

export interface ServerPodContext {
  readonly namespace: string;
  readonly image: string;
  readonly config: OperatorConfig;
  /** `storageMode: pvcPerNode`: the node's pool PVC (pool-claims.ts). */
  readonly poolClaim?: string;
}

/**
 * Where a pvcPerNode pod mounts its pool PVC (the original's CONTAINER_POOL_MNT): the pool file
 * and the server's state (its config, certificates and etcd member's data) live there and move
 * with the PVC; the pool's mount point stays under poolLocation on the host, where the kubelet
 * and the FlexVolume driver see the dots.
 */
export const POOL_VOLUME_MOUNT = '/backend-pv';
/**
 * pvcPerNode: where a server pod mounts the etcd recovery's ConfigMap RECOVERY_CONFIGMAP (etcd-recovery-step.ts;
 * optional: empty while there is none), and the file its server leaves a stranded etcd member's
 * report in (the container's termination message, read by the operator from the pod's status).
 */
export const RECOVERY_MOUNT = '/dotmesh-etcd-recovery';
export const TERMINATION_LOG = '/dotmesh-termination-log';
export const RECOVERY_CONFIGMAP = 'dotmesh-etcd-recovery';
/** What the preStop hook (`dotmesh-server pre-stop`) needs in a container's environment. */
const PRESTOP_ENV: V1EnvVar[] = [
  { name: 'DOTMESH_NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
];

/** The preStop hook of the pod's containers: on an eviction, wait until no use of the node's dots is left (bounded). */
const PRESTOP: V1Lifecycle = {
  preStop: {
    exec: {
      command: [
        'dotmesh-server',
        'pre-stop',
        `--admin-api-key-file=${SECRET_MOUNT}/${ADMIN_API_KEY_KEY}`,
        `--timeout-seconds=${PRESTOP_TIMEOUT_SECONDS}`,
      ],
    },
  },
};

/** `server-<node>`, or with a pool PVC (`pvc-<hex>`) the original's `server-pvc-<last 4 of the PVC>-<node>`. */
export function serverPodName(node: string, poolClaim?: string): string {
  return poolClaim === undefined ? `server-${node}` : `server-pvc-${poolClaim.slice(-4)}-${node}`;
}

/**
 * The pod for `node`, its spec hash in an annotation. `join`: the node joins the cluster with
 * its join Secret (absent: the cluster's first node, or a node whose pool already has its config).
 */
export function serverPod(node: string, ctx: ServerPodContext, join = false, nodeUid?: string): V1Pod {
  const poolDir = poolLocationFor(ctx.config, node);
  const flexDir = flexvolumeDirFor(ctx.config, node);
  const kubeletRoot = kubeletRootDirFor(ctx.config, node);
  const claim = ctx.poolClaim;
  const spec: V1Pod['spec'] = {
    // A pod with a PVC goes through the scheduler (pinned to its node by affinity), which binds
    // a WaitForFirstConsumer claim in the node's zone and checks an adopted PV's zone; without
    // one the pod names its node itself.
    ...(claim === undefined
      ? { nodeName: node }
      : {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }],
              },
            },
          },
        }),
    hostNetwork: true,
    hostPID: true,
    restartPolicy: 'Always',
    serviceAccountName: SERVER_SERVICE_ACCOUNT,
    // The token is for the preStop hook alone (it reads its own pod).
    automountServiceAccountToken: true,
    terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
    // A node's server runs on it whatever its taints: the node's dots are there.
    tolerations: [{ operator: 'Exists' }],
    containers: [
      {
        name: 'dotmesh-server',
        image: ctx.image,
        imagePullPolicy: 'IfNotPresent',
        command: ['dotmesh-server', 'serve-kubernetes'],
        args: [
          `--node-name=${node}`,
          '--advertise-address=$(DOTMESH_NODE_IP)',
          `--pool-dir=${poolDir}`,
          ...(claim === undefined
            ? [`--pool-size=${ctx.config.local.poolSizePerNodeBytes}`]
            : // No --pool-size: the pool follows its volume's size (the server's
              // pool/volume-growth.ts), so raising pvSizePerNode changes no pod (no restart).
              [
                `--pool-volume-dir=${POOL_VOLUME_MOUNT}`,
                `--etcd-recovery-dir=${RECOVERY_MOUNT}`,
                // Only when set: the default leaves the pods (their spec hash) as they were.
                ...(ctx.config.pvcPerNode.etcdMoveWaitSeconds === DEFAULT_ETCD_MOVE_WAIT_SECONDS
                  ? []
                  : [`--etcd-move-wait-seconds=${ctx.config.pvcPerNode.etcdMoveWaitSeconds}`]),
              ]),
          `--admin-password-file=${SECRET_MOUNT}/${ADMIN_PASSWORD_KEY}`,
          `--admin-api-key-file=${SECRET_MOUNT}/${ADMIN_API_KEY_KEY}`,
          `--etcd-bin=${SERVER_ETCD_BIN}`,
          ...(join ? [`--join-dir=${JOIN_MOUNT}`] : []),
        ],
        env: [
          ...PRESTOP_ENV,
          { name: FLEXVOLUME_DIR_ENV, value: flexDir },
          ...(claim === undefined ? [] : [{ name: 'DOTMESH_TERMINATION_LOG', value: TERMINATION_LOG }]),
        ],
        ...(claim === undefined ? {} : { terminationMessagePath: TERMINATION_LOG }),
        lifecycle: PRESTOP,
        ports: [{ name: 'api', containerPort: SERVER_PORT, protocol: 'TCP' }],
        readinessProbe: { httpGet: { path: '/check', port: CHECK_PORT }, periodSeconds: 2, failureThreshold: 2 },
        securityContext: { privileged: true },
        volumeMounts: [
          { name: 'pool', mountPath: poolDir, mountPropagation: 'Bidirectional' },
          { name: 'dev', mountPath: '/dev' },
          { name: 'flexvolume', mountPath: flexDir },
          // HostToContainer: the kubelet's later unmounts reach the pod (no pod volume is pinned).
          { name: 'kubelet', mountPath: kubeletRoot, readOnly: true, mountPropagation: 'HostToContainer' },
          { name: 'admin-secret', mountPath: SECRET_MOUNT, readOnly: true },
          ...(join ? [{ name: 'join', mountPath: JOIN_MOUNT, readOnly: true }] : []),
          ...(claim === undefined
            ? []
            : [
                { name: 'pool-volume', mountPath: POOL_VOLUME_MOUNT },
                { name: 'etcd-recovery', mountPath: RECOVERY_MOUNT, readOnly: true },
              ]),
        ],
      },
      csiNodeContainer({
        image: ctx.image,
        kubeletRoot,
        poolDir,
        serverPort: SERVER_PORT,
        apiKeyFile: `${SECRET_MOUNT}/${ADMIN_API_KEY_KEY}`,
        secretVolume: 'admin-secret',
        secretMount: SECRET_MOUNT,
        poolVolume: 'pool',
        kubeletVolume: 'kubelet',
        // The kubelet's unmounts of CSI volumes during a drain go through the node plugin: it
        // stays as long as the server does.
        preStop: { lifecycle: PRESTOP, env: PRESTOP_ENV },
      }),
    ],
    volumes: [
      { name: 'pool', hostPath: { path: poolDir, type: 'DirectoryOrCreate' } },
      { name: 'dev', hostPath: { path: '/dev', type: 'Directory' } },
      { name: 'flexvolume', hostPath: { path: flexDir, type: 'DirectoryOrCreate' } },
      { name: 'kubelet', hostPath: { path: kubeletRoot, type: 'Directory' } },
      { name: 'admin-secret', secret: { secretName: ADMIN_SECRET, defaultMode: 0o400 } },
      ...(join ? [{ name: 'join', secret: { secretName: joinSecretName(node), defaultMode: 0o400 } }] : []),
      ...(claim === undefined
        ? []
        : [
            { name: 'pool-volume', persistentVolumeClaim: { claimName: claim } },
            { name: 'etcd-recovery', configMap: { name: RECOVERY_CONFIGMAP, optional: true } },
          ]),
    ],
  };
  const labels = { [ROLE_LABEL]: SERVER_ROLE, [NODE_LABEL]: node };
  const hash = createHash('sha256').update(JSON.stringify({ labels, spec })).digest('hex').slice(0, 16);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: serverPodName(node, claim),
      namespace: ctx.namespace,
      labels,
      annotations: { [SPEC_HASH_ANNOTATION]: hash },
      ...(nodeUid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: node, uid: nodeUid, controller: true }] } : {}),
    },
    spec,
  };
}
