import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  listLoopDevicesFor,
  nodeExec,
  nodeStatus,
  podManifest,
  runPodToCompletion,
  skipUnless,
  type TestCluster,
  testNamespace,
  useTestCluster,
  waitForPodPhase,
} from '@dotmesh/testkit';

/**
 * The Kubernetes test cluster itself (packages/testkit/src/k8s): three real kubelets, each with
 * its own containerd and network namespace, run real pods that write and read data, bind the
 * same port on their own node address, and drive loop devices and btrfs as the dotmesh server
 * pod will. Uses the run's shared cluster (or one of its own when run alone).
 */
describe('kubernetes test cluster', {
  skip: skipUnless(['root', 'netns', 'btrfs', 'losetup', 'k8s']),
  timeout: 30 * 60_000,
}, () => {
  let cluster: TestCluster;
  let ns: string;
  const log: string[] = [];
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  after(() => cleanup.run());

  before(async () => {
    const t0 = Date.now();
    cluster = await useTestCluster(suite, { log: (s) => log.push(s) });
    log.push(`cluster available after ${Date.now() - t0} ms`);
    ns = await testNamespace(cluster.kubectl, suite, 'dmtest-cluster');
  });

  test('three nodes are Ready, each with its own InternalIP in its own network namespace', async (t) => {
    for (const line of log) t.diagnostic(line);
    assert.equal(cluster.nodes.length, 3);
    const status = await nodeStatus(cluster.kubectl);
    for (const node of cluster.nodes) {
      assert.deepEqual(status.get(node.name), { ready: true, internalIP: node.ip }, node.name);
      const { stdout } = await nodeExec(node, 'ip', ['-4', '-o', 'addr', 'show', 'eth0']);
      assert.match(stdout, new RegExp(`inet ${node.ip.replaceAll('.', '\\.')}/24`), `${node.name}'s namespace holds its address`);
      const { stdout: listening } = await nodeExec(node, 'ss', ['-Hltn', `sport = :10250`]);
      assert.match(
        listening,
        new RegExp(`${node.ip.replaceAll('.', '\\.')}:10250`),
        `${node.name}'s kubelet listens on its own address`,
      );
    }
    assert.equal(new Set(cluster.nodes.map((n) => n.ip)).size, 3, 'distinct addresses');
  });

  test('a pod on each node writes through a hostPath and another pod there reads it back; an emptyDir joins two containers', async () => {
    await Promise.all(
      cluster.nodes.map(async (node, i) => {
        const hostDir = join(node.paths.dir, 'workload-data', ns);
        const volumes = [{ name: 'data', hostPath: { path: hostDir, type: 'DirectoryOrCreate' } }];
        const volumeMounts = [{ name: 'data', mountPath: '/data' }];
        const common = { namespace: ns, node: node.name, image: cluster.images.busybox.ref, volumes, volumeMounts };
        const written = await runPodToCompletion(
          cluster.kubectl,
          podManifest({
            ...common,
            name: `writer-${i}`,
            command: [
              'sh',
              '-c',
              `head -c 1048576 /dev/urandom > /data/file && echo ${node.name} >> /data/file && sha256sum /data/file`,
            ],
          }),
        );
        const read = await runPodToCompletion(
          cluster.kubectl,
          podManifest({ ...common, name: `reader-${i}`, command: ['sha256sum', '/data/file'] }),
        );
        const hash = written.trim().split(/\s+/)[0]!;
        assert.match(hash, /^[0-9a-f]{64}$/);
        assert.equal(read.trim().split(/\s+/)[0], hash, `the reader on ${node.name} sees what the writer wrote`);
        const onHost = readFileSync(join(hostDir, 'file'));
        assert.equal(createHash('sha256').update(onHost).digest('hex'), hash, 'the file is on the node, in its hostPath');
        assert.ok(onHost.toString('latin1').endsWith(`${node.name}\n`));

        const shared = await runPodToCompletion(
          cluster.kubectl,
          podManifest({
            namespace: ns,
            node: node.name,
            image: cluster.images.busybox.ref,
            name: `emptydir-${i}`,
            volumes: [{ name: 'scratch', emptyDir: {} }],
            volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
            initContainers: [
              {
                name: 'write',
                image: cluster.images.busybox.ref,
                imagePullPolicy: 'Never',
                command: ['sh', '-c', 'head -c 65536 /dev/urandom > /scratch/f && sha256sum /scratch/f > /scratch/f.sha256'],
                volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
              },
            ],
            command: ['sh', '-c', 'sha256sum -c /scratch/f.sha256'],
          }),
        );
        assert.match(shared, /^\/scratch\/f: OK$/m, `the main container on ${node.name} verified the init container's data`);
      }),
    );
  });

  test('privileged hostNetwork pods on every node bind port 32607 on their node address and reach each other', async () => {
    const token = createHash('sha256').update(`${ns}${Date.now()}`).digest('hex').slice(0, 16);
    for (const [i, node] of cluster.nodes.entries()) {
      await cluster.kubectl(['apply', '-f', '-'], {
        input: podManifest({
          namespace: ns,
          node: node.name,
          name: `listener-${i}`,
          image: cluster.images.busybox.ref,
          hostNetwork: true,
          privileged: true,
          restartPolicy: 'Always',
          env: [{ name: 'NODE_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } }],
          command: [
            'sh',
            '-c',
            `mkdir -p /www && echo "${node.name} ${token}" > /www/id && exec httpd -f -p "$NODE_IP:32607" -h /www`,
          ],
        }),
      });
    }
    for (const [i, node] of cluster.nodes.entries()) {
      await waitForPodPhase(cluster.kubectl, ns, `listener-${i}`, ['Running']);
      // The listener is in the node's namespace, on the node's address.
      const { stdout } = await nodeExec(node, 'ss', ['-Hltn', 'sport = :32607']);
      assert.match(stdout, new RegExp(`${node.ip.replaceAll('.', '\\.')}:32607`), `${node.name} listens on 32607`);
    }
    for (const [i] of cluster.nodes.entries()) {
      for (const target of cluster.nodes) {
        // busybox wget without -T (its -T segfaults); each node answers with its own name.
        const { stdout } = await cluster.kubectl([
          'exec',
          '-n',
          ns,
          `listener-${i}`,
          '--',
          'wget',
          '-q',
          '-O',
          '-',
          `http://${target.ip}:32607/id`,
        ]);
        assert.equal(stdout.trim(), `${target.name} ${token}`, `listener-${i} reaches ${target.name}`);
      }
    }
  });

  test('Services through kube-proxy: a ClusterIP and a NodePort reach a pod from pods and hostNetwork pods on other nodes; pods reach the API server through the kubernetes Service', async () => {
    const token = createHash('sha256').update(`svc${ns}${Date.now()}`).digest('hex').slice(0, 16);
    const web = cluster.nodes[0]!;
    await cluster.kubectl(['apply', '-f', '-'], {
      input: podManifest({
        namespace: ns,
        node: web.name,
        name: 'web',
        labels: { app: 'web' },
        image: cluster.images.busybox.ref,
        restartPolicy: 'Always',
        command: ['sh', '-c', `mkdir -p /www && echo ${token} > /www/id && exec httpd -f -p 8080 -h /www`],
      }),
    });
    const service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: ns },
      spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    };
    await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(service) });
    await waitForPodPhase(cluster.kubectl, ns, 'web', ['Running']);
    const { stdout } = await cluster.kubectl(['get', 'service', 'web', '-n', ns, '-o', 'json']);
    const spec = (JSON.parse(stdout) as { spec: { clusterIP: string; ports: { nodePort: number }[] } }).spec;
    const nodePort = spec.ports[0]!.nodePort;
    const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
    const clientScript = (nodePortTarget: string) =>
      [
        'set -eu',
        'get() { curl -sSf --retry 20 --retry-delay 1 --retry-all-errors -m 5 "$@"; }',
        `echo "clusterip=$(get http://${spec.clusterIP}/id)"`,
        `echo "nodeport=$(get http://${nodePortTarget}:${nodePort}/id)"`,
        `api=$(get --cacert ${sa}/ca.crt -H "Authorization: Bearer $(cat ${sa}/token)" "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api")`,
        'echo "api=$(echo "$api" | tr -d " \n")"',
      ].join('\n');
    for (const [name, node, hostNetwork, target] of [
      ['svc-client-pod', cluster.nodes[2]!, false, cluster.nodes[1]!.ip],
      ['svc-client-host', cluster.nodes[1]!, true, cluster.nodes[2]!.ip],
    ] as const) {
      const out = await runPodToCompletion(
        cluster.kubectl,
        podManifest({
          namespace: ns,
          node: node.name,
          name,
          hostNetwork,
          serviceAccountToken: true,
          image: cluster.images.serverBase.ref,
          command: ['sh', '-c', clientScript(target)],
        }),
        120_000,
      );
      assert.match(out, new RegExp(`^clusterip=${token}$`, 'm'), `${name}: the ClusterIP reaches the pod on ${web.name}`);
      assert.match(out, new RegExp(`^nodeport=${token}$`, 'm'), `${name}: the NodePort on ${target} reaches it`);
      assert.match(
        out,
        /^api=.*"kind":"APIVersions"/m,
        `${name}: the kubernetes Service reaches the API server with the pod's token`,
      );
    }
  });

  test('a privileged hostNetwork+hostPID pod attaches a loop device, makes, mounts and writes a btrfs pool, then detaches', async () => {
    const node = cluster.nodes[1]!;
    const poolDir = join(node.paths.dir, 'pool', ns);
    const script = [
      'set -eu',
      `f=${poolDir}/pool.img`,
      'truncate -s 256M "$f"',
      'dev=$(losetup -f --show "$f")',
      'echo "dev=$dev"',
      'mkfs.btrfs -q "$dev"',
      'mkdir -p /mnt/pool && mount "$dev" /mnt/pool',
      'btrfs subvolume create /mnt/pool/dot >/dev/null',
      'head -c 4194304 /dev/urandom > /mnt/pool/dot/data',
      'btrfs subvolume snapshot -r /mnt/pool/dot /mnt/pool/commit >/dev/null',
      'echo "written=$(sha256sum /mnt/pool/dot/data | cut -d" " -f1)"',
      'umount /mnt/pool && mount "$dev" /mnt/pool',
      'echo "remounted=$(sha256sum /mnt/pool/commit/data | cut -d" " -f1)"',
      'umount /mnt/pool',
      'losetup -d "$dev"',
      'echo "pid1=$(tr "\\0" " " < /proc/1/cmdline)"',
    ].join('\n');
    const out = await runPodToCompletion(
      cluster.kubectl,
      podManifest({
        namespace: ns,
        node: node.name,
        name: 'btrfs-pool',
        image: cluster.images.serverBase.ref,
        hostNetwork: true,
        hostPID: true,
        privileged: true,
        volumes: [
          { name: 'pool', hostPath: { path: poolDir, type: 'DirectoryOrCreate' } },
          { name: 'dev', hostPath: { path: '/dev' } },
        ],
        volumeMounts: [
          { name: 'pool', mountPath: poolDir },
          { name: 'dev', mountPath: '/dev' },
        ],
        command: ['sh', '-c', script],
      }),
      180_000,
    );
    const field = (k: string) => out.match(new RegExp(`^${k}=(.*)$`, 'm'))?.[1];
    assert.match(field('dev') ?? '', /^\/dev\/loop\d+$/, out);
    assert.match(field('written') ?? '', /^[0-9a-f]{64}$/);
    assert.equal(field('remounted'), field('written'), 'the committed data reads back after a remount');
    const hostPid1 = readFileSync('/proc/1/cmdline', 'utf8').replaceAll('\0', ' ');
    assert.equal(field('pid1'), hostPid1, 'hostPID: the pod sees the host PID 1');
    assert.deepEqual(await listLoopDevicesFor(join(poolDir, 'pool.img')), [], 'the pod detached its loop device');
  });
});
