import { randomBytes } from 'node:crypto';
import type { AfterHook } from '../cleanup.ts';
import { waitFor } from '../process.ts';
import type { Kubectl } from './kubectl.ts';

/**
 * Small helpers for tests that run pods on the test cluster: a namespace of the test's own,
 * pod manifests pinned to a node with the cluster's local images, and waiting for a phase.
 */

/** Creates a fresh namespace `<prefix>-<random>` (deleted when `t` ends) and waits for its default service account. */
export async function testNamespace(kubectl: Kubectl, t: AfterHook, prefix = 'dmtest'): Promise<string> {
  const ns = `${prefix}-${randomBytes(3).toString('hex')}`;
  await kubectl(['create', 'namespace', ns]);
  t.after(() => kubectl(['delete', 'namespace', ns, '--wait=false']).then(() => undefined));
  await waitFor(() => kubectl(['get', 'serviceaccount', 'default', '-n', ns]).then(() => true), {
    timeoutMs: 60_000,
    what: `the default service account of namespace ${ns}`,
  });
  return ns;
}

export interface PodSpecOptions {
  readonly name: string;
  readonly namespace: string;
  /** The node the pod runs on (spec.nodeName: no scheduling, unless `scheduled`). */
  readonly node: string;
  /**
   * The scheduler places the pod on `node` (a nodeSelector on its hostname label) rather than
   * the pod being bound there directly: as users' pods, which the scheduler holds until their
   * claims are bound.
   */
  readonly scheduled?: boolean;
  readonly image: string;
  readonly command: readonly string[];
  readonly hostNetwork?: boolean;
  readonly hostPID?: boolean;
  readonly privileged?: boolean;
  /** `restartPolicy`; default Never (a pod that runs to completion). */
  readonly restartPolicy?: 'Never' | 'Always' | 'OnFailure';
  readonly volumes?: readonly Record<string, unknown>[];
  readonly volumeMounts?: readonly Record<string, unknown>[];
  readonly env?: readonly Record<string, unknown>[];
  readonly initContainers?: readonly Record<string, unknown>[];
  readonly labels?: Readonly<Record<string, string>>;
  /** Mount the service account's token (default false: most test pods never call the API). */
  readonly serviceAccountToken?: boolean;
}

/** A pod manifest (JSON, which kubectl takes as YAML) using a locally imported image. */
export function podManifest(o: PodSpecOptions): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace, ...(o.labels ? { labels: o.labels } : {}) },
    spec: {
      ...(o.scheduled ? { nodeSelector: { 'kubernetes.io/hostname': o.node } } : { nodeName: o.node }),
      restartPolicy: o.restartPolicy ?? 'Never',
      hostNetwork: o.hostNetwork ?? false,
      hostPID: o.hostPID ?? false,
      terminationGracePeriodSeconds: 1,
      automountServiceAccountToken: o.serviceAccountToken ?? false,
      ...(o.initContainers ? { initContainers: o.initContainers } : {}),
      containers: [
        {
          name: 'main',
          image: o.image,
          imagePullPolicy: 'Never',
          command: o.command,
          ...(o.privileged ? { securityContext: { privileged: true } } : {}),
          ...(o.volumeMounts ? { volumeMounts: o.volumeMounts } : {}),
          ...(o.env ? { env: o.env } : {}),
        },
      ],
      ...(o.volumes ? { volumes: o.volumes } : {}),
    },
  });
}

/** The pod fields (podManifest) that mount the PVC `claim` at /data. */
export function claimAtData(claim: string) {
  return {
    volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }],
    volumeMounts: [{ name: 'data', mountPath: '/data' }],
  };
}

/**
 * A PersistentVolumeClaim of the CSI StorageClass `dotmesh-csi` (docs/kubernetes.md), ReadWriteOnce,
 * asking `storage` (default 1Gi), made from `dataSource` (a VolumeSnapshot or PVC) or
 * `dataSourceRef` (a DotCommit) when given.
 */
export function csiClaim(o: {
  readonly name: string;
  readonly namespace: string;
  readonly storage?: string;
  readonly dataSource?: Readonly<Record<string, string>>;
  readonly dataSourceRef?: Readonly<Record<string, string>>;
}) {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'dotmesh-csi',
      resources: { requests: { storage: o.storage ?? '1Gi' } },
      ...(o.dataSource ? { dataSource: o.dataSource } : {}),
      ...(o.dataSourceRef ? { dataSourceRef: o.dataSourceRef } : {}),
    },
  };
}

/** The dataSourceRef naming DotCommit `name` (the operator's volume populator). */
export function dotCommitSource(name: string) {
  return { apiGroup: 'dotmesh.io', kind: 'DotCommit', name };
}

/** Deletes objects and waits until they are gone (pods first: their volumes are unmounted while the server runs). */
export async function deleteAndWait(cluster: { readonly kubectl: Kubectl }, args: readonly string[]): Promise<void> {
  await cluster.kubectl(['delete', ...args, '--ignore-not-found', '--wait=true', '--timeout=180s'], {
    timeoutMs: 200_000,
  });
}

/**
 * Force-deletes the pods of `namespace` bound to a Node that no longer exists (a node the test
 * removed), as the pod garbage collector does only after its quarantine (40 s and more): no
 * kubelet is left to end them, so a wait for them (a namespace's or `deleteAndWait`'s) would
 * wait for the collector. Returns their names.
 */
export async function forceDeleteOrphanedPods(cluster: { readonly kubectl: Kubectl }, namespace: string): Promise<string[]> {
  const { kubectl } = cluster;
  const nodes = new Set((await kubectl(['get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}'])).stdout.split(/\s+/));
  const pods = JSON.parse((await kubectl(['get', 'pods', '-n', namespace, '-o', 'json'])).stdout) as {
    items: { metadata: { name: string }; spec?: { nodeName?: string } }[];
  };
  const orphans = pods.items.filter((p) => p.spec?.nodeName && !nodes.has(p.spec.nodeName)).map((p) => p.metadata.name);
  if (orphans.length > 0) {
    await kubectl(['delete', 'pod', ...orphans, '-n', namespace, '--force', '--grace-period=0', '--ignore-not-found']);
  }
  return orphans;
}

interface PodJson {
  readonly status?: { readonly phase?: string; readonly containerStatuses?: unknown[] };
}

/** The pod's phase (Pending, Running, Succeeded, Failed, Unknown). */
export async function podPhase(kubectl: Kubectl, namespace: string, name: string): Promise<string> {
  const { stdout } = await kubectl(['get', 'pod', name, '-n', namespace, '-o', 'json']);
  return (JSON.parse(stdout) as PodJson).status?.phase ?? 'Unknown';
}

/**
 * Waits until the pod reaches one of `phases`; throws with its description and log if it
 * reaches Failed (unless awaited) or the time runs out.
 */
export async function waitForPodPhase(
  kubectl: Kubectl,
  namespace: string,
  name: string,
  phases: readonly string[],
  timeoutMs = 120_000,
): Promise<string> {
  const failed = new AbortController();
  try {
    return await waitFor(
      async () => {
        const phase = await podPhase(kubectl, namespace, name);
        if (phase === 'Failed' && !phases.includes('Failed')) failed.abort(new Error(`pod ${namespace}/${name} failed`));
        return phases.includes(phase) ? phase : undefined;
      },
      { timeoutMs, intervalMs: 300, what: `pod ${namespace}/${name} to be ${phases.join(' or ')}`, signal: failed.signal },
    );
  } catch (e) {
    const describe = await kubectl(['describe', 'pod', name, '-n', namespace]).then(
      (r) => r.stdout,
      (x: Error) => x.message,
    );
    const logs = await kubectl(['logs', name, '-n', namespace, '--all-containers']).then(
      (r) => r.stdout,
      (x: Error) => x.message,
    );
    throw new Error(`${(e as Error).message}\n--- describe ---\n${describe}\n--- logs ---\n${logs}`, { cause: e });
  }
}

/** Applies the pod, waits for it to succeed and returns its log. */
export async function runPodToCompletion(kubectl: Kubectl, manifest: string, timeoutMs = 120_000): Promise<string> {
  const { metadata } = JSON.parse(manifest) as { metadata: { name: string; namespace: string } };
  await kubectl(['apply', '-f', '-'], { input: manifest });
  await waitForPodPhase(kubectl, metadata.namespace, metadata.name, ['Succeeded'], timeoutMs);
  const { stdout } = await kubectl(['logs', metadata.name, '-n', metadata.namespace]);
  return stdout;
}
