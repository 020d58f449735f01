import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Cleanup,
  claimAtData,
  deleteAndWait,
  installedDriverDir,
  podManifest,
  runPodToCompletion,
  type ServerProcess,
  startServerProcess,
  type TestCluster,
  type TestClusterNode,
  waitFor,
} from '@dotmesh/testkit';

/**
 * Shared by the FlexVolume, provisioner and operator tests. The FlexVolume and provisioner tests
 * exercise those parts alone, with dotmesh-server a host process beside one node of the shared
 * test cluster (as k8s-csi.test.ts does; k8s-operator.test.ts runs them as users get them): the
 * kubelet runs the driver on the host, which reaches the server's socket in the node's
 * FlexVolume directory.
 */

/** The driver `npm run build` makes (a single executable: no Node.js needed to run it). */
export const FLEX_DRIVER_BIN = join(import.meta.dirname, '../../../dist/dotmesh-flexvolume');

/**
 * A dotmesh-server (host process) that installs its FlexVolume driver into `node`'s plugin
 * directory. The installed files are removed after the server stops.
 */
export async function startFlexServer(cleanup: Cleanup, node: TestClusterNode): Promise<ServerProcess> {
  cleanup.add(() => rm(installedDriverDir(node), { recursive: true, force: true }), 'remove the installed FlexVolume driver');
  const server = await startServerProcess({
    cleanup,
    poolSize: '2G',
    extraConfig: { flexVolumeDir: node.paths.flexVolumeDir, flexVolumeDriver: FLEX_DRIVER_BIN },
  });
  // The API answers first; the driver (~125 MB) is installed and its socket served just after.
  await waitFor(() => existsSync(join(installedDriverDir(node), 'dm.sock')), {
    timeoutMs: 60_000,
    what: 'the FlexVolume driver installed and its socket served',
  });
  return server;
}

/** Applies one object (JSON) with kubectl. */
export async function apply(cluster: TestCluster, object: Record<string, unknown>): Promise<void> {
  await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(object) });
}

/** A claim `name` of `namespace` for a dot: the StorageClass `dotmesh`, ReadWriteOnce, 1Gi. */
export async function dotClaim(cluster: TestCluster, namespace: string, name: string): Promise<void> {
  await apply(cluster, {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'dotmesh', resources: { requests: { storage: '1Gi' } } },
  });
}

/**
 * A static PV `pv` with the FlexVolume source naming dot admin/`dot`, and the PVC `claim` of
 * `namespace` bound to it; waits until the claim is Bound.
 */
export async function staticFlexVolume(
  cluster: TestCluster,
  o: { readonly pv: string; readonly namespace: string; readonly claim: string; readonly dot: string },
): Promise<void> {
  await apply(cluster, {
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name: o.pv },
    spec: {
      capacity: { storage: '1Gi' },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Retain',
      storageClassName: '',
      claimRef: { namespace: o.namespace, name: o.claim },
      flexVolume: { driver: 'dotmesh.io/dm', options: { namespace: 'admin', name: o.dot } },
    },
  });
  await apply(cluster, {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: o.claim, namespace: o.namespace },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: '', volumeName: o.pv, resources: { requests: { storage: '1Gi' } } },
  });
  await waitFor(
    async () =>
      (await cluster.kubectl(['get', 'pvc', o.claim, '-n', o.namespace, '-o', 'jsonpath={.status.phase}'])).stdout === 'Bound',
    { timeoutMs: 60_000, what: `PVC ${o.claim} bound to the static PV` },
  );
}

/** What the helpers below need of a server: its API as admin (a host process's, or a pod's through its node address). */
export type AdminApi = Pick<ServerProcess, 'admin'>;

/** The SHA-256 of `file` (relative to the dot's default subdot) in a new commit of the dot's master. */
export async function hashInNewCommit(server: AdminApi, namespace: string, name: string, file: string): Promise<string> {
  const commit = await server.admin.call('Commit', {
    Namespace: namespace,
    Name: name,
    Branch: '',
    Message: 'check',
    Metadata: {},
  });
  const fsId = await server.admin.call('Lookup', { Namespace: namespace, Name: name, Branch: '' });
  const path = await server.admin.call('MountCommit', { FilesystemId: fsId, CommitId: commit });
  return createHash('sha256')
    .update(await readFile(join(path, '__default__', file)))
    .digest('hex');
}

/** Whether the dot exists. */
export async function dotExists(server: AdminApi, namespace: string, name: string): Promise<boolean> {
  const all = await server.admin.call('AllDotsAndBranches', null);
  return all.Dots.some((d) => d.MasterBranch.Name.Namespace === namespace && d.MasterBranch.Name.Name === name);
}

/** Waits until the branch has no recorded use (the kubelet unmounted it). */
export async function waitUnused(server: AdminApi, fsId: string, what: string): Promise<void> {
  await waitFor(async () => (await server.admin.call('BranchPublications', fsId)).Uses.length === 0, {
    timeoutMs: 120_000,
    what,
  });
}

/** A pod script: writes 256 KiB of random data to /data/<file> and prints its SHA-256 (then sleeps when `stay`). */
export function writeRandomScript(file: string, stay: boolean): string {
  return `head -c 262144 /dev/urandom > /data/${file} && sha256sum /data/${file} | cut -d' ' -f1${stay ? ' && echo written && sleep 3600' : ''}`;
}

/** The Warning Events on PVC `name` of `namespace`, as "reason: message". */
export async function pvcWarnings(cluster: TestCluster, namespace: string, name: string): Promise<string[]> {
  const { stdout } = await cluster.kubectl([
    'get',
    'events',
    '-n',
    namespace,
    '--field-selector',
    `involvedObject.kind=PersistentVolumeClaim,involvedObject.name=${name},type=Warning`,
    '-o',
    'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
  ]);
  return stdout.split('\n').filter(Boolean);
}

/** A PVC the provisioner must refuse: its name, its annotations, the Event message expected. */
export type RefusedClaim = readonly [name: string, annotations: Record<string, string>, message: RegExp];

/**
 * Makes each claim (`claim(name, annotations)`), then checks that each gets one
 * `ProvisioningFailed` Warning Event matching its message and, several provisioner resyncs
 * later, is still Pending with no PV and that one Event; deletes the claims.
 */
export async function expectClaimsRefused(
  cluster: TestCluster,
  namespace: string,
  cases: readonly RefusedClaim[],
  claim: (name: string, annotations: Record<string, string>) => Promise<void>,
): Promise<void> {
  for (const [name, annotations] of cases) await claim(name, annotations);
  for (const [name, , message] of cases) {
    const events = await waitFor(
      async () => ((await pvcWarnings(cluster, namespace, name)).length > 0 ? pvcWarnings(cluster, namespace, name) : undefined),
      { timeoutMs: 120_000, intervalMs: 1000, what: `a Warning Event on PVC ${name}` },
    );
    assert.ok(
      events.some((e) => e.startsWith('ProvisioningFailed: ') && message.test(e)),
      `${name}: ${events.join(' | ')}`,
    );
  }
  await new Promise((r) => setTimeout(r, 5000));
  for (const [name] of cases) {
    const r = await cluster.kubectl(['get', 'pvc', name, '-n', namespace, '-o', 'jsonpath={.status.phase}/{.spec.volumeName}']);
    assert.equal(r.stdout, 'Pending/', `${name} has no PV`);
    assert.equal((await pvcWarnings(cluster, namespace, name)).length, 1, `${name}: one Event, not one per resync`);
    await deleteAndWait(cluster, ['pvc', name, '-n', namespace]);
  }
}

/** The nodes the VolumeAttachments of PersistentVolume `pv` say it is attached to now. */
export async function attachedNodes(cluster: TestCluster, pv: string): Promise<string[]> {
  const { items } = JSON.parse((await cluster.kubectl(['get', 'volumeattachments', '-o', 'json'])).stdout) as {
    items: Array<{ spec: { nodeName: string; source: { persistentVolumeName?: string } }; status?: { attached?: boolean } }>;
  };
  return items.filter((a) => a.spec.source.persistentVolumeName === pv && a.status?.attached).map((a) => a.spec.nodeName);
}

/**
 * Runs `script` (sh) in a busybox pod `pod` on `node` with the claim `claim` of `namespace` at
 * /data, waits for it to end, deletes it and returns its output, trimmed.
 */
export async function scriptWithClaim(
  cluster: TestCluster,
  o: {
    readonly namespace: string;
    readonly node: TestClusterNode;
    readonly pod: string;
    readonly claim: string;
    readonly script: string;
    readonly timeoutMs: number;
  },
): Promise<string> {
  const out = await runPodToCompletion(
    cluster.kubectl,
    podManifest({
      name: o.pod,
      namespace: o.namespace,
      node: o.node.name,
      image: cluster.images.busybox.ref,
      command: ['sh', '-c', o.script],
      ...claimAtData(o.claim),
    }),
    o.timeoutMs,
  );
  await deleteAndWait(cluster, ['pod', o.pod, '-n', o.namespace]);
  return out.trim();
}

/** The messages of the Events of `namespace` that `fieldSelector` selects (e.g. `reason=X`), space-separated. */
export async function eventMessages(cluster: TestCluster, namespace: string, fieldSelector: string): Promise<string> {
  const { stdout } = await cluster.kubectl([
    'get',
    'events',
    '-n',
    namespace,
    '--field-selector',
    fieldSelector,
    '-o',
    'jsonpath={.items[*].message}',
  ]);
  return stdout;
}
