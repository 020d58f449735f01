import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Cleanup,
  claimAtData,
  deleteAndWait,
  makeTempDir,
  type PodSpecOptions,
  podManifest,
  type TestCluster,
  waitFor,
} from '@dotmesh/testkit';
import { alternate, ratio, summarize, timeMs } from './harness.ts';
import type { K8sBenchCluster } from './k8s-bench-cluster.ts';
import type { Row } from './report.ts';

/**
 * P16 (issue 16, "Kubernetes"; not in the targets table, so informational): a
 * PersistentVolumeClaim of the StorageClass `dotmesh` and a pod that mounts it and writes a
 * file, from `kubectl apply` until the file holding what the pod wrote is seen on the node
 * (through the kubelet's mount of the volume; the pod then syncs, prints it and exits, checked
 * outside the clock), on the one-node test cluster of the bench's own that P19 shares
 * (k8s-bench-cluster.ts: Dotmesh installed as docs/kubernetes.md says). The clock covers the dynamic provisioner making the dot and
 * its PV, the binding, the kubelet's FlexVolume mount through the node's server pod, the
 * container's start and its write. Both pods go through the scheduler, as users' pods do (it
 * holds the pod until its claim is bound). Reference, in the same run on the same node: the
 * same pod on a fresh hostPath directory. Samples alternate which side goes first; after each,
 * the pod and the claim are deleted (not timed).
 */
const WAIT_S = 180;

export interface K8sBenchOptions {
  readonly samples: number;
  /** Untimed rounds of both sides first (the node's first pods, the first provisioned dot). */
  readonly warmup: number;
  readonly log: (s: string) => void;
}

export async function benchK8sVolume(k8s: K8sBenchCluster, o: K8sBenchOptions): Promise<Row[]> {
  const local = new Cleanup();
  try {
    return await measure(k8s, local, o);
  } finally {
    await local.run();
  }
}

async function measure({ cluster, node }: K8sBenchCluster, local: Cleanup, o: K8sBenchOptions): Promise<Row[]> {
  const { kubectl } = cluster;
  const ns = `p16-${randomBytes(3).toString('hex')}`;
  await kubectl(['create', 'namespace', ns]);
  // Newest first: the pods (their volumes unmounted while the server runs), the claims, then
  // the PVs the provisioner deletes, all before the install goes.
  local.add(
    () =>
      waitFor(async () => (await provisionedPvs(cluster, ns)) === 0, {
        timeoutMs: 120_000,
        intervalMs: 1000,
        what: `the provisioner deleted the PVs of ${ns}`,
      }),
    'wait for the provisioned PVs to go',
  );
  local.add(() => deleteAndWait(cluster, ['pvc', '--all', '-n', ns]), 'delete the claims');
  local.add(() => deleteAndWait(cluster, ['pod', '--all', '-n', ns]), 'delete the pods');
  const hostDirs = await makeTempDir('bench-k8s-hostpath', local);

  const pod = (name: string, token: string, fields: Pick<PodSpecOptions, 'volumes' | 'volumeMounts'>) =>
    podManifest({
      name,
      namespace: ns,
      node: node.name,
      scheduled: true,
      image: cluster.images.busybox.ref,
      command: ['sh', '-c', `echo ${token} > /data/written && sync && cat /data/written`],
      ...fields,
    });
  const claim = (name: string) => ({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: ns },
    spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'dotmesh', resources: { requests: { storage: '1Gi' } } },
  });
  /**
   * Applies `objects` and times until the file pod `name` writes holds its token as the node's
   * host sees it (in one of the paths `files(pod uid)` lists, polled every few ms: the kubelet's
   * own status updates come about once a second, too coarse to time by); then, untimed, waits
   * for the pod to succeed, checks what it printed and removes it (and `after`).
   */
  const trial = async (
    name: string,
    objects: string,
    token: string,
    files: (uid: string) => Promise<string[]>,
    after: readonly string[][],
  ) => {
    const explain = async (e: Error) => {
      const describe = await kubectl(['describe', 'pod', name, '-n', ns]).then(
        (r) => r.stdout,
        (x: Error) => x.message,
      );
      return new Error(`${e.message}\n--- describe ---\n${describe}`, { cause: e });
    };
    const ms = await timeMs(async () => {
      const { stdout } = await kubectl(['apply', '-f', '-', '-o', 'json'], { input: objects });
      const applied = JSON.parse(stdout) as AppliedObject & { items?: AppliedObject[] };
      const uid = (applied.items ?? [applied]).find((x) => x.kind === 'Pod')?.metadata.uid;
      if (!uid) throw new Error(`kubectl apply did not answer pod ${name}'s uid: ${stdout.slice(0, 300)}`);
      await waitFor(
        async () => {
          for (const f of await files(uid)) if ((await readFile(f, 'utf8').catch(() => '')) === `${token}\n`) return true;
          return false;
        },
        { timeoutMs: WAIT_S * 1000, intervalMs: 5, what: `pod ${ns}/${name}'s write seen on the node` },
      ).catch(async (e: Error) => {
        throw await explain(e);
      });
    });
    await kubectl(['wait', `pod/${name}`, '-n', ns, '--for=jsonpath={.status.phase}=Succeeded', `--timeout=${WAIT_S}s`], {
      timeoutMs: (WAIT_S + 20) * 1000,
    }).catch(async (e: Error) => {
      throw await explain(e);
    });
    const { stdout } = await kubectl(['logs', name, '-n', ns]);
    if (stdout.trim() !== token) throw new Error(`pod ${ns}/${name} printed ${JSON.stringify(stdout)}, not its token ${token}`);
    await deleteAndWait(cluster, ['pod', name, '-n', ns]);
    for (const args of after) await deleteAndWait(cluster, [...args, '-n', ns]);
    return ms;
  };
  /** The written file in each FlexVolume mount of pod `uid` in the node's kubelet directory (one per PV). */
  const flexFiles = async (uid: string) => {
    const dir = join(node.paths.kubeletRootDir, 'pods', uid, 'volumes', 'dotmesh.io~dm');
    return (await readdir(dir).catch(() => [])).map((pv) => join(dir, pv, 'written'));
  };
  const dotmesh = (name: string) => {
    const token = randomBytes(8).toString('hex');
    const objects = [JSON.stringify(claim(name)), pod(name, token, claimAtData(name))].join('\n---\n');
    return trial(name, objects, token, flexFiles, [['pvc', name]]);
  };
  const hostPath = (name: string) => {
    const token = randomBytes(8).toString('hex');
    const fields = {
      volumes: [{ name: 'data', hostPath: { path: join(hostDirs, name), type: 'DirectoryOrCreate' } }],
      volumeMounts: [{ name: 'data', mountPath: '/data' }],
    };
    return trial(name, pod(name, token, fields), token, async () => [join(hostDirs, name, 'written')], []);
  };

  for (let i = 0; i < o.warmup; i++)
    await alternate(
      i,
      () => dotmesh(`dm-warmup-${i}`),
      () => hostPath(`hp-warmup-${i}`),
    );
  const dot: number[] = [];
  const ref: number[] = [];
  for (let i = 0; i < o.samples; i++)
    await alternate(
      i,
      async () => dot.push(await dotmesh(`dm-${i}`)),
      async () => ref.push(await hostPath(`hp-${i}`)),
    );
  const figure = summarize(dot);
  const reference = summarize(ref);
  return [
    {
      id: 'P16',
      what: 'PVC of StorageClass dotmesh + pod writing a file: kubectl apply → the write seen on the node',
      unit: 'ms',
      figure,
      reference: { what: 'the same pod on a hostPath volume', stats: reference },
      diff: figure.p50 - reference.p50,
      ratio: ratio(figure.p50, reference.p50),
      note: 'no target: informational (issue 16)',
    },
  ];
}

interface AppliedObject {
  readonly kind: string;
  readonly metadata: { readonly uid: string };
}

async function provisionedPvs(cluster: TestCluster, ns: string): Promise<number> {
  const { stdout } = await cluster.kubectl(['get', 'pv', '-o', 'json']);
  const pvs = (JSON.parse(stdout) as { items: { spec?: { claimRef?: { namespace?: string } } }[] }).items;
  return pvs.filter((pv) => pv.spec?.claimRef?.namespace === ns).length;
}
