import { randomBytes } from 'node:crypto';
import {
  Cleanup,
  claimAtData,
  deleteAndWait,
  installDotmeshCsiFromDoc,
  installDotmeshFromDoc,
  podManifest,
  runPodToCompletion,
  startTestCluster,
  waitFor,
  waitForDotmesh,
  waitForDotmeshCsi,
} from '@dotmesh/testkit';
import { formatBytes, ratio, summarize, timeMs } from './harness.ts';
import { DIST, KUBERNETES_DOC } from './repo-paths.ts';
import type { Row } from './report.ts';

/**
 * P8 through Kubernetes (issue 18: "snapshot → restored PVC ready, size-independent"): on a
 * one-node test cluster of the bench's own with Dotmesh and its CSI driver installed as
 * docs/kubernetes.md says (operator manifest, then `dotmesh-csi.yaml`), a PVC of `dotmesh-csi`
 * per size gets that many random bytes from a pod (untimed). Each sample times, from `kubectl
 * apply` of a VolumeSnapshot of it, until the snapshot is readyToUse, then from `kubectl apply`
 * of a PVC with that snapshot as its dataSource until the claim is Bound (the StorageClass binds
 * at once: csi-provisioner's CreateVolume made the branch from the snapshot's commit), after one
 * untimed round (the sidecars' first calls). The first
 * restore of each size is checked by a pod reading it (its hash is the source's, untimed). The
 * claim is that neither depends on the size: the rows of the larger sizes are compared with the
 * smallest's in the same run. Snapshots and claims are deleted after each sample (untimed).
 */

export interface CsiRestoreOptions {
  readonly sizes: readonly number[];
  readonly samples: number;
  /** The node's pool (`local.poolSizePerNode`): the sizes' data, once (snapshots and restores share it). */
  readonly poolSize: string;
  readonly log: (s: string) => void;
}

export async function benchCsiRestore(o: CsiRestoreOptions): Promise<Row[]> {
  const local = new Cleanup();
  try {
    return await measure(local, o);
  } finally {
    await local.run();
  }
}

async function measure(local: Cleanup, o: CsiRestoreOptions): Promise<Row[]> {
  const t0 = Date.now();
  const cluster = await startTestCluster({ cleanup: local, nodes: 1 });
  const node = cluster.nodes[0]!;
  const install = await installDotmeshFromDoc(cluster, local, {
    docFile: KUBERNETES_DOC,
    dist: DIST,
    config: { 'local.poolSizePerNode': o.poolSize },
  });
  await waitForDotmesh(cluster, [node]);
  await installDotmeshCsiFromDoc(cluster, local, install, { docFile: KUBERNETES_DOC });
  await waitForDotmeshCsi(cluster, [node]);
  o.log(`P8 restore: one-node cluster with Dotmesh and its CSI driver up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const { kubectl } = cluster;
  const ns = `p8r-${randomBytes(3).toString('hex')}`;
  await kubectl(['create', 'namespace', ns]);
  // Newest first: snapshots and claims (their dots deleted through the driver), then the namespace.
  local.add(() => deleteAndWait(cluster, ['namespace', ns]), 'delete the namespace');
  local.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claims');
  local.add(() => deleteAndWait(cluster, ['volumesnapshot', '--all', '-n', ns]), 'delete the snapshots');
  const apply = (x: unknown) => kubectl(['apply', '-f', '-'], { input: JSON.stringify(x) });
  const jsonpath = async (args: readonly string[], path: string) =>
    (await kubectl([...args, '-n', ns, '-o', `jsonpath=${path}`])).stdout;
  const claim = (name: string, snapshot?: string) => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: ns },
    spec: {
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'dotmesh-csi',
      resources: { requests: { storage: '1Mi' } },
      ...(snapshot ? { dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: snapshot } } : {}),
    },
  });
  const pod = (name: string, pvc: string, script: string) =>
    podManifest({
      name,
      namespace: ns,
      node: node.name,
      scheduled: true,
      image: cluster.images.busybox.ref,
      command: ['sh', '-c', script],
      ...claimAtData(pvc),
    });
  const sha = 'sha256sum /data/blob | cut -d" " -f1';
  // Time enough for the slowest step on a loaded machine: writing or hashing the data at ≥ 10 MiB/s.
  const dataMs = (bytes: number) => 300_000 + bytes / (10 * 1024);

  const results: { size: number; snapshot: number[]; restore: number[] }[] = [];
  for (const size of o.sizes) {
    const label = formatBytes(size).replace(/\s+/g, '').toLowerCase();
    const source = `src-${label}`;
    await apply(claim(source));
    const writer = `write-${label}`;
    const written = (
      await runPodToCompletion(
        kubectl,
        pod(writer, source, `head -c ${size} /dev/urandom > /data/blob && sync && ${sha}`),
        dataMs(size),
      )
    ).trim();
    await deleteAndWait(cluster, ['pod', writer, '-n', ns]);
    o.log(`P8 restore: ${formatBytes(size)} written to ${source}`);
    const snapshot: number[] = [];
    const restore: number[] = [];
    // One untimed round first (i = -1): the sidecars' and the snapshot-controller's first calls.
    for (let i = -1; i < o.samples; i++) {
      const snap = `snap-${label}-${i + 1}`;
      const restored = `restored-${label}-${i + 1}`;
      const timed = i >= 0 ? snapshot : [];
      timed.push(
        await timeMs(async () => {
          await apply({
            apiVersion: 'snapshot.storage.k8s.io/v1',
            kind: 'VolumeSnapshot',
            metadata: { name: snap, namespace: ns },
            spec: { volumeSnapshotClassName: 'dotmesh-csi', source: { persistentVolumeClaimName: source } },
          });
          await waitFor(async () => (await jsonpath(['get', 'volumesnapshot', snap], '{.status.readyToUse}')) === 'true', {
            timeoutMs: 300_000,
            intervalMs: 20,
            what: `VolumeSnapshot ${snap} ready`,
          });
        }),
      );
      (i >= 0 ? restore : []).push(
        await timeMs(async () => {
          await apply(claim(restored, snap));
          await waitFor(async () => (await jsonpath(['get', 'pvc', restored], '{.status.phase}')) === 'Bound', {
            timeoutMs: 300_000,
            intervalMs: 20,
            what: `PVC ${restored} from ${snap} Bound`,
          });
        }),
      );
      if (i === 0) {
        const reader = `read-${label}`;
        const read = (await runPodToCompletion(kubectl, pod(reader, restored, sha), dataMs(size))).trim();
        if (read !== written) throw new Error(`${restored} holds ${read}, not ${written} (the data at ${snap})`);
        await deleteAndWait(cluster, ['pod', reader, '-n', ns]);
      }
      await deleteAndWait(cluster, ['pvc', restored, '-n', ns]);
      await deleteAndWait(cluster, ['volumesnapshot', snap, '-n', ns]);
    }
    await deleteAndWait(cluster, ['pvc', source, '-n', ns]);
    results.push({ size, snapshot, restore });
  }

  const base = results[0]!;
  const rows: Row[] = [];
  for (const r of results) {
    const size = formatBytes(r.size);
    for (const [what, samples, baseSamples] of [
      ['VolumeSnapshot applied → readyToUse', r.snapshot, base.snapshot],
      ['PVC from the VolumeSnapshot applied → Bound', r.restore, base.restore],
    ] as const) {
      const figure = summarize(samples);
      const reference = summarize(baseSamples);
      rows.push({
        id: 'P8',
        what: `${what} (dotmesh-csi, through Kubernetes)`,
        size,
        unit: 'ms',
        figure,
        ...(r === base
          ? { note: 'informational; the reference of the larger sizes (size-independent is the claim)' }
          : {
              reference: { what: `the same at ${formatBytes(base.size)}`, stats: reference },
              ratio: ratio(figure.p50, reference.p50),
              note: 'informational: size-independent is the claim',
            }),
      });
    }
  }
  return rows;
}
