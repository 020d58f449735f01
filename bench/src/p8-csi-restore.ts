import { randomBytes } from 'node:crypto';
import {
  Cleanup,
  claimAtData,
  csiClaim,
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
 * per size gets that many random bytes from a pod (untimed, every size before any sample). Each
 * sample times, from `kubectl apply` of a VolumeSnapshot of it, until the snapshot is readyToUse,
 * then from `kubectl apply` of a PVC with that snapshot as its dataSource until the claim is Bound
 * (the StorageClass binds at once: csi-provisioner's CreateVolume made the branch from the
 * snapshot's commit), after one untimed round (the sidecars' first calls). Samples go round the
 * sizes in alternating order (small first, then large first), so no size always runs after
 * another's writes. Beside the Kubernetes figures, the driver's own CreateVolume time of each
 * restored claim (its call log) separates Dotmesh's part from the sidecars' and the API server's.
 * The first restore of each size is checked by a pod reading it (its hash is the source's,
 * untimed). The claim is that none of it depends on the size: the rows of the larger sizes are
 * compared with the smallest's in the same run. Snapshots and claims are deleted after each
 * sample (untimed).
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
  const claim = (name: string, snapshot?: string) =>
    csiClaim({
      name,
      namespace: ns,
      storage: '1Mi',
      ...(snapshot ? { dataSource: { apiGroup: 'snapshot.storage.k8s.io', kind: 'VolumeSnapshot', name: snapshot } } : {}),
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

  // Every size's source first (untimed), so no sample runs right after a large write.
  const sources: { size: number; label: string; name: string; written: string }[] = [];
  for (const size of o.sizes) {
    const label = formatBytes(size).replace(/\s+/g, '').toLowerCase();
    const name = `src-${label}`;
    await apply(claim(name));
    const writer = `write-${label}`;
    const written = (
      await runPodToCompletion(
        kubectl,
        pod(writer, name, `head -c ${size} /dev/urandom > /data/blob && sync && ${sha}`),
        dataMs(size),
      )
    ).trim();
    await deleteAndWait(cluster, ['pod', writer, '-n', ns]);
    o.log(`P8 restore: ${formatBytes(size)} written to ${name}`);
    sources.push({ size, label, name, written });
  }

  const results = sources.map((s) => ({ ...s, snapshot: [] as number[], restore: [] as number[], volumes: [] as string[] }));
  /** One round on one size: snapshot → ready, claim from it → Bound; its PV is remembered (the driver's log). */
  const round = async (r: (typeof results)[number], n: string, timed: boolean, check: boolean) => {
    const snap = `snap-${r.label}-${n}`;
    const restored = `restored-${r.label}-${n}`;
    const snapshotMs = await timeMs(async () => {
      await apply({
        apiVersion: 'snapshot.storage.k8s.io/v1',
        kind: 'VolumeSnapshot',
        metadata: { name: snap, namespace: ns },
        spec: { volumeSnapshotClassName: 'dotmesh-csi', source: { persistentVolumeClaimName: r.name } },
      });
      await waitFor(async () => (await jsonpath(['get', 'volumesnapshot', snap], '{.status.readyToUse}')) === 'true', {
        timeoutMs: 300_000,
        intervalMs: 20,
        what: `VolumeSnapshot ${snap} ready`,
      });
    });
    const restoreMs = await timeMs(async () => {
      await apply(claim(restored, snap));
      await waitFor(async () => (await jsonpath(['get', 'pvc', restored], '{.status.phase}')) === 'Bound', {
        timeoutMs: 300_000,
        intervalMs: 20,
        what: `PVC ${restored} from ${snap} Bound`,
      });
    });
    if (timed) {
      r.snapshot.push(snapshotMs);
      r.restore.push(restoreMs);
      r.volumes.push(await jsonpath(['get', 'pvc', restored], '{.spec.volumeName}'));
    }
    if (check) {
      const reader = `read-${r.label}`;
      const read = (await runPodToCompletion(kubectl, pod(reader, restored, sha), dataMs(r.size))).trim();
      if (read !== r.written) throw new Error(`${restored} holds ${read}, not ${r.written} (the data at ${snap})`);
      await deleteAndWait(cluster, ['pod', reader, '-n', ns]);
    }
    await deleteAndWait(cluster, ['pvc', restored, '-n', ns]);
    await deleteAndWait(cluster, ['volumesnapshot', snap, '-n', ns]);
  };
  // One untimed round first: the sidecars' and the snapshot-controller's first calls.
  await round(results[0]!, 'warm', false, false);
  // Sizes alternate in order (small first, then large first, ...), so neither always follows the other.
  for (let i = 0; i < o.samples; i++) {
    for (const r of i % 2 === 0 ? results : [...results].reverse()) await round(r, String(i), true, i === 0);
  }
  for (const r of results) await deleteAndWait(cluster, ['pvc', r.name, '-n', ns]);
  // The driver's own CreateVolume time of each timed restore, from its call log (one JSON line per call).
  const driverLog = (
    await kubectl(['logs', 'deployment/dotmesh-csi-controller', '-c', 'dotmesh-csi', '-n', 'dotmesh', '--tail=-1'])
  ).stdout;
  const createVolumeMs = new Map<string, number>();
  for (const line of driverLog.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { method?: unknown; name?: unknown; ok?: unknown; ms?: unknown };
    if (entry.method === 'CreateVolume' && entry.ok === true && typeof entry.name === 'string' && typeof entry.ms === 'number') {
      createVolumeMs.set(entry.name, entry.ms);
    }
  }
  const driverMs = (r: (typeof results)[number]) =>
    r.volumes.map((v) => {
      const ms = createVolumeMs.get(v);
      if (ms === undefined) throw new Error(`the CSI driver's log has no successful CreateVolume of ${v}`);
      return ms;
    });

  const base = results[0]!;
  const rows: Row[] = [];
  for (const r of results) {
    const size = formatBytes(r.size);
    for (const [what, samples, baseSamples] of [
      ['VolumeSnapshot applied → readyToUse', r.snapshot, base.snapshot],
      ['PVC from the VolumeSnapshot applied → Bound', r.restore, base.restore],
      ["the driver's CreateVolume of that PVC (its call log)", driverMs(r), driverMs(base)],
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
