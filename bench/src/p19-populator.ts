import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Cleanup,
  claimAtData,
  csiClaim,
  deleteAndWait,
  dotCommitSource,
  installDotmeshCsiFromDoc,
  podManifest,
  SERVER_BUNDLE,
  startServerProcess,
  waitForDotmeshCsi,
} from '@dotmesh/testkit';
import { alternate, formatBytes, ratio, summarize, timeMs } from './harness.ts';
import type { K8sBenchCluster } from './k8s-bench-cluster.ts';
import { KUBERNETES_DOC } from './repo-paths.ts';
import type { Row } from './report.ts';

/**
 * P19 (issue 19, "PVC from a remote commit (1 GiB dot, first time and again) → pod Running, vs a
 * plain PVC"; informational): on the one-node test cluster P16 shares (k8s-bench-cluster.ts)
 * with the CSI driver installed as docs/kubernetes.md says, a Dotmesh server outside Kubernetes
 * (testkit's startServerProcess, reached through the test bridge as a DotRemote over plain HTTP)
 * holds one dot of `size` random bytes per first-time sample. Each sample times, from `kubectl
 * apply` of a PVC and a pod mounting it until the pod is Running (`kubectl wait`, a watch):
 *
 * - first time: a PVC whose dataSourceRef names a new DotCommit of one of those dots (the
 *   operator's populator pulls it with a DotTransfer, branches it, makes the PV);
 * - again: a PVC of the DotCommit of the first dot, already here (a branch, no transfer);
 * - reference, in the same run: a plain PVC of `dotmesh-csi` (CreateVolume of an empty volume).
 *
 * Samples alternate which side goes first, after `warmup` untimed plain rounds. The first pod of each
 * kind checks its data (the blob's hash, untimed). Pods and claims are deleted after each sample,
 * and their PVs waited for (untimed).
 */
const WAIT_S = 600;

export interface PopulatorBenchOptions {
  readonly size: number;
  readonly firstSamples: number;
  readonly againSamples: number;
  /** Untimed plain rounds first (the node's first CSI volume and pod). */
  readonly warmup: number;
  readonly log: (s: string) => void;
}

export async function benchPopulator(k8s: K8sBenchCluster, o: PopulatorBenchOptions): Promise<Row[]> {
  const local = new Cleanup();
  try {
    return await measure(k8s, local, o);
  } finally {
    await local.run();
  }
}

async function measure({ cluster, node, install }: K8sBenchCluster, local: Cleanup, o: PopulatorBenchOptions): Promise<Row[]> {
  const { kubectl } = cluster;
  const t0 = Date.now();
  await installDotmeshCsiFromDoc(cluster, local, install, { docFile: KUBERNETES_DOC });
  await waitForDotmeshCsi(cluster, [node]);
  const poolGiB = Math.ceil((o.size * o.firstSamples) / 2 ** 30) + 2;
  const outside = await startServerProcess({
    cleanup: local,
    serverBin: SERVER_BUNDLE,
    poolSize: `${poolGiB}G`,
    extraConfig: { listenHost: '0.0.0.0' },
  });
  const ns = `p19-${randomBytes(3).toString('hex')}`;
  const secret = `${ns}-key`;
  await kubectl(['create', 'namespace', ns]);
  // Newest first: pods, claims (their PVs and branches through csi-provisioner), DotCommits
  // and their pulls, the remote, then the namespace.
  local.add(() => deleteAndWait(cluster, ['namespace', ns]), 'delete the namespace');
  local.add(async () => {
    await kubectl(['delete', 'dotremote', ns, '-n', 'dotmesh', '--ignore-not-found']);
    await kubectl(['delete', 'secret', secret, '-n', 'dotmesh', '--ignore-not-found']);
  }, 'delete the DotRemote and its key');
  local.add(() => kubectl(['delete', 'dottransfers', '-n', 'dotmesh', '-l', 'dotmesh.io/dot-commit']), 'delete the pulls');
  local.add(() => waitNoPvs(), 'wait for the claims’ PVs to go');
  local.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claims');
  local.add(() => deleteAndWait(cluster, ['pod', '--all', '-n', ns]), 'delete the pods');
  await kubectl(['create', 'secret', 'generic', secret, '-n', 'dotmesh', `--from-literal=apiKey=${outside.apiKey}`]);
  const apply = (x: unknown) => kubectl(['apply', '-f', '-'], { input: JSON.stringify(x) });
  await apply({
    apiVersion: 'dotmesh.io/v1alpha1',
    kind: 'DotRemote',
    metadata: { name: ns, namespace: 'dotmesh' },
    spec: { host: cluster.apiServerAddress, port: outside.port, plainHttp: true, apiKeySecret: { name: secret } },
  });
  // One dot per first-time sample outside, each `size` random bytes in one commit.
  const hashes: string[] = [];
  for (let i = 0; i < o.firstSamples; i++) {
    const dot = `${ns}-data-${i}`;
    const dir = await outside.admin.call('Procure', { Namespace: 'admin', Name: dot, Subdot: '' });
    hashes.push(await writeRandom(join(dir, 'blob'), o.size));
    await outside.admin.call('Commit', { Namespace: 'admin', Name: dot, Branch: '', Message: 'data', Metadata: {} });
    await apply({
      apiVersion: 'dotmesh.io/v1alpha1',
      kind: 'DotCommit',
      metadata: { name: `dc-${i}`, namespace: ns },
      spec: { dot, remote: ns },
    });
  }
  o.log(
    `P19: CSI driver, server outside and ${o.firstSamples} × ${formatBytes(o.size)} dots ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );

  async function waitNoPvs(): Promise<void> {
    for (let t = 0; t < 240; t++) {
      const { stdout } = await kubectl(['get', 'pv', '-o', 'jsonpath={range .items[*]}{.spec.claimRef.namespace}{"\\n"}{end}']);
      if (!stdout.split('\n').includes(ns)) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`the PVs of ${ns}'s claims were not deleted in 120 s`);
  }
  const claim = (name: string, source?: string) =>
    csiClaim({ name, namespace: ns, ...(source ? { dataSourceRef: dotCommitSource(source) } : {}) });
  /** Times PVC + pod → Running; then (untimed) checks the blob's hash when asked, deletes both and waits for the PV to go. */
  const trial = async (name: string, source: string | undefined, expectHash?: string) => {
    const pod = podManifest({
      name,
      namespace: ns,
      node: node.name,
      scheduled: true,
      image: cluster.images.busybox.ref,
      command: ['sleep', '3600'],
      ...claimAtData(name),
    });
    const ms = await timeMs(async () => {
      await kubectl(['apply', '-f', '-'], { input: [JSON.stringify(claim(name, source)), pod].join('\n---\n') });
      await kubectl(['wait', `pod/${name}`, '-n', ns, '--for=jsonpath={.status.phase}=Running', `--timeout=${WAIT_S}s`], {
        timeoutMs: (WAIT_S + 20) * 1000,
      });
    });
    if (expectHash) {
      const { stdout } = await kubectl(['exec', name, '-n', ns, '--', 'sha256sum', '/data/blob'], { timeoutMs: 600_000 });
      if (stdout.split(' ')[0] !== expectHash)
        throw new Error(`pod ${ns}/${name} reads ${stdout.trim()}, not the commit's ${expectHash}`);
    }
    await deleteAndWait(cluster, ['pod', name, '-n', ns]);
    await deleteAndWait(cluster, ['pvc', name, '-n', ns]);
    await waitNoPvs();
    return ms;
  };

  for (let i = 0; i < o.warmup; i++) await trial(`plain-warmup-${i}`, undefined);
  const first: number[] = [];
  const again: number[] = [];
  const plain: number[] = [];
  for (let i = 0; i < o.firstSamples; i++)
    await alternate(
      i,
      async () => first.push(await trial(`first-${i}`, `dc-${i}`, i === 0 ? hashes[0] : undefined)),
      async () => plain.push(await trial(`plain-first-${i}`, undefined)),
    );
  for (let i = 0; i < o.againSamples; i++)
    await alternate(
      i,
      async () => again.push(await trial(`again-${i}`, 'dc-0', i === 0 ? hashes[0] : undefined)),
      async () => plain.push(await trial(`plain-again-${i}`, undefined)),
    );
  const reference = { what: 'a plain PVC of dotmesh-csi (empty) + the same pod', stats: summarize(plain) };
  const row = (what: string, samples: number[]): Row => {
    const figure = summarize(samples);
    return {
      id: 'P19',
      what,
      size: formatBytes(o.size),
      unit: 'ms',
      figure,
      reference,
      diff: figure.p50 - reference.stats.p50,
      ratio: ratio(figure.p50, reference.stats.p50),
      note: 'no target: informational (issue 19)',
    };
  };
  return [
    row('PVC from a DotCommit of a remote commit, first time (pulled) + pod: kubectl apply → pod Running', first),
    row('PVC from the same DotCommit again (commit here, no transfer) + pod: kubectl apply → pod Running', again),
  ];
}

/** Writes `size` random bytes to `path` (16 MiB at a time); their SHA-256. */
async function writeRandom(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const f = await open(path, 'w');
  try {
    for (let done = 0; done < size; ) {
      const chunk = randomBytes(Math.min(16 * 2 ** 20, size - done));
      hash.update(chunk);
      await f.write(chunk);
      done += chunk.length;
    }
    await f.sync();
  } finally {
    await f.close();
  }
  return hash.digest('hex');
}
