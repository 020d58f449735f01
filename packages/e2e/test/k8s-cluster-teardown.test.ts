import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Cleanup,
  type ClusterState,
  clusterFootprint,
  clusterHandle,
  clusterLeftovers,
  hostBaseline,
  isAlive,
  makeTempDir,
  podManifest,
  readClusterState,
  runPodToCompletion,
  SHARED_FILES,
  skipUnless,
  spawnTracked,
  startTestCluster,
  stopSharedCluster,
  type TestCluster,
  type TestClusterInfo,
  waitFor,
  waitForPodPhase,
} from '@dotmesh/testkit';

/**
 * The test cluster leaves nothing behind: after `stop()`, and after its owner was SIGKILLed
 * (the leftover cleaner's path), no process, mount, loop device, namespace, link, cgroup, host
 * file or registration of it remains, and the sysctls the kubelets changed are restored. Each
 * test runs a private cluster (never the run's shared one) with pods on every node first.
 */
const DAEMON = fileURLToPath(new URL('../../testkit/src/k8s/cluster-daemon.ts', import.meta.url));

/** A finished and a running pod on every node (containers, overlay mounts, pod netns, CNI results, shims). */
async function populate(cluster: TestCluster): Promise<void> {
  await Promise.all(
    cluster.nodes.map(async (node, i) => {
      const common = { namespace: 'default', node: node.name, image: cluster.images.busybox.ref };
      const out = await runPodToCompletion(
        cluster.kubectl,
        podManifest({ ...common, name: `once-${i}`, command: ['echo', `ran on ${node.name}`] }),
      );
      assert.equal(out.trim(), `ran on ${node.name}`);
      await cluster.kubectl(['apply', '-f', '-'], {
        input: podManifest({ ...common, name: `sleeper-${i}`, restartPolicy: 'Always', command: ['sleep', '3600'] }),
      });
      await waitForPodPhase(cluster.kubectl, 'default', `sleeper-${i}`, ['Running']);
    }),
  );
}

describe('kubernetes test cluster teardown', { skip: skipUnless(['root', 'netns', 'k8s']), timeout: 30 * 60_000 }, () => {
  test('stop() undoes everything the cluster started, mounted, wrote and changed on the host', async (t) => {
    const before = await hostBaseline();
    const cleanup = new Cleanup();
    try {
      const cluster = await startTestCluster({ cleanup, log: (s) => t.diagnostic(s) });
      await populate(cluster);
      const state = readClusterState(cluster.dir);
      const footprint = clusterFootprint(state);
      t.diagnostic(`before stop: ${footprint.pids.length} processes, ${footprint.mounts.length} mounts`);
      t.diagnostic(`host files: ${footprint.hostFiles.join(' ')}`);
      assert.ok(footprint.pids.length >= 3 * 3, 'kubelets, containerds and pods were running');
      assert.ok(footprint.mounts.length > 0, 'overlay, netns and volume mounts');
      assert.ok(
        footprint.hostFiles.some((f) => f.startsWith('/run/containerd/s/')),
        'shim sockets',
      );
      assert.ok(
        footprint.hostFiles.some((f) => f.startsWith('/var/lib/cni/results/')),
        'CNI results',
      );
      const t0 = Date.now();
      await cluster.stop();
      t.diagnostic(`stop took ${Date.now() - t0} ms`);
      assert.deepEqual(await clusterLeftovers(state, footprint, before), []);
    } finally {
      await cleanup.run();
    }
  });

  test('a cluster whose owner was SIGKILLed is torn down from its state file', async (t) => {
    const before = await hostBaseline();
    const cleanup = new Cleanup();
    try {
      const shared = join(await makeTempDir('k8s-crash', cleanup), 'shared');
      await mkdir(shared);
      const daemon = spawnTracked(process.execPath, [DAEMON, '--shared-dir', shared], { cleanup });
      cleanup.add(() => stopSharedCluster(shared), 'stop the crashed cluster');
      await waitFor(() => existsSync(join(shared, SHARED_FILES.ready)) || existsSync(join(shared, SHARED_FILES.failed)), {
        timeoutMs: 20 * 60_000,
        intervalMs: 500,
        what: 'the cluster daemon',
      });
      if (existsSync(join(shared, SHARED_FILES.failed))) assert.fail(`the daemon failed:\n${daemon.output().slice(-3000)}`);
      const clusterDir = readFileSync(join(shared, SHARED_FILES.ready), 'utf8').trim();
      const info = JSON.parse(readFileSync(join(clusterDir, 'cluster.json'), 'utf8')) as TestClusterInfo;
      await populate(clusterHandle(info));
      const state: ClusterState = readClusterState(clusterDir);
      const footprint = clusterFootprint(state);

      process.kill(daemon.pid, 'SIGKILL');
      await daemon.exited;
      const orphans = footprint.pids.filter(isAlive);
      t.diagnostic(`after SIGKILL of the owner: ${orphans.length} of ${footprint.pids.length} cluster processes still run`);
      assert.ok(orphans.length > 0, 'the components outlive their owner (a real crash)');

      const t0 = Date.now();
      await stopSharedCluster(shared);
      t.diagnostic(`recovery teardown took ${Date.now() - t0} ms`);
      assert.deepEqual(await clusterLeftovers(state, footprint, before), []);
      assert.ok(!existsSync(shared));
    } finally {
      await cleanup.run();
    }
  });
});
