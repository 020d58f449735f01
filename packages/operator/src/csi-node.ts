import type { V1Container, V1EnvVar, V1Lifecycle } from '@kubernetes/client-node';

/**
 * The CSI driver's node plugin, a second container of each server pod (the pod is per node, so
 * it knows the node's kubelet directory, which a DaemonSet could not be told per node): the
 * server image's `dotmesh-csi`, registered with the node's kubelet through its
 * `plugins_registry`, serving `csi.dotmesh.io` at `<kubelet root>/plugins/csi.dotmesh.io/csi.sock`,
 * a client of its node's server (on the node's address) as `admin` with the Secret's key file.
 * NodeStage bind mounts a branch's live data from the pool directory (HostToContainer: the
 * server's btrfs mounts reach it through the host) to the kubelet's paths (Bidirectional: the
 * kubelet and the pods see them).
 */
export const CSI_DRIVER_NAME = 'csi.dotmesh.io';
export const CSI_NODE_CONTAINER = 'csi-node';
/** Where the server image keeps the .proto files dotmesh-csi loads (docs/kubernetes.md). */
export const CSI_PROTO = '/opt/dotmesh/proto/csi.proto';
export const REGISTRATION_PROTO = '/opt/dotmesh/proto/pluginregistration/api.proto';

export interface CsiNodeMounts {
  readonly image: string;
  readonly kubeletRoot: string;
  readonly poolDir: string;
  /** The server's API port on the node's address. */
  readonly serverPort: number;
  /** The admin's API key file in the mounted Secret, and that Secret's volume and mount path. */
  readonly apiKeyFile: string;
  readonly secretVolume: string;
  readonly secretMount: string;
  readonly poolVolume: string;
  readonly kubeletVolume: string;
  /** The server container's preStop hook and the environment it needs (the plugin stops with the server). */
  readonly preStop: { readonly lifecycle: V1Lifecycle; readonly env: readonly V1EnvVar[] };
}

export function csiNodeContainer(m: CsiNodeMounts): V1Container {
  return {
    name: CSI_NODE_CONTAINER,
    image: m.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['dotmesh-csi'],
    args: [
      `--endpoint=unix://${m.kubeletRoot}/plugins/${CSI_DRIVER_NAME}/csi.sock`,
      `--server-url=http://$(DOTMESH_NODE_IP):${m.serverPort}/rpc`,
      `--api-key-file=${m.apiKeyFile}`,
      `--csi-proto=${CSI_PROTO}`,
      `--registration-dir=${m.kubeletRoot}/plugins_registry`,
      `--registration-proto=${REGISTRATION_PROTO}`,
    ],
    env: [...m.preStop.env],
    lifecycle: m.preStop.lifecycle,
    securityContext: { privileged: true },
    volumeMounts: [
      { name: m.kubeletVolume, mountPath: m.kubeletRoot, mountPropagation: 'Bidirectional' },
      { name: m.poolVolume, mountPath: m.poolDir, mountPropagation: 'HostToContainer' },
      { name: m.secretVolume, mountPath: m.secretMount, readOnly: true },
    ],
  };
}
