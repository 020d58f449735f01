import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  addClusterNode,
  type ClusterState,
  cleanupFor,
  clusterFootprint,
  clusterHandle,
  clusterLeftovers,
  hostBaseline,
  isAlive,
  makeTempDir,
  nodeHostFiles,
  nodeLeftovers,
  nodeStatus,
  podManifest,
  readClusterState,
  removeClusterNode,
  runPodToCompletion,
  SHARED_FILES,
  skipUnless,
  spawnTracked,
  startTestCluster,
  stopSharedCluster,
  type TestCluster,
  type TestClusterInfo,
  type TestClusterNode,
  waitFor,
  waitForPodPhase,
} from '@dotmesh/testkit';

/**
 * The test cluster leaves nothing behind: after `stop()`, and after its owner was SIGKILLed
 * (the leftover cleaner's path), no process, mount, loop device, namespace, link, cgroup, host
 * file or registration of it remains, and the sysctls the kubelets changed are restored — nodes
 * added while it ran included (added-nodes.ts); a node removed while it runs leaves nothing
 * either, and its Node object is gone. Each test runs a private cluster (never the run's shared
 * one) with pods on every node first. The two tests run one after the other, not at once: each
 * node's kubelet holds 6 inotify instances (the host's default limit is 128 per user), and the
 * run's shared cluster may be up beside them.
 */
const DAEMON = fileURLToPath(new URL('../../testkit/src/k8s/cluster-daemon.ts', import.meta.url));

/** A finished and a running pod on every node (containers, overlay mounts, pod netns, CNI results, shims). */
async function populate(cluster: TestCluster, nodes: readonly TestClusterNode[] = cluster.nodes): Promise<void> {
  await Promise.all(
    nodes.map(async (node) => {
      const i = node.name.replace('node-', '');
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
    // A test’s own failure is reported as such, its cleanup’s failure apart (not in its place).
    const cleanup = cleanupFor(t);
    const cluster = await startTestCluster({ cleanup, log: (s) => t.diagnostic(s) });
    await populate(cluster);
    // Two nodes added at once while it runs: the first removed again, the second left to stop().
    const t1 = Date.now();
    const added = (await Promise.all([addClusterNode(cluster, { cleanup }), addClusterNode(cluster, { cleanup })])).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    t.diagnostic(`two nodes added in ${Date.now() - t1} ms`);
    assert.deepEqual(
      added.map((n) => n.name),
      ['node-3', 'node-4'],
    );
    await populate(cluster, added);
    const [gone, kept] = added as [TestClusterNode, TestClusterNode];
    const goneFiles = nodeHostFiles([gone.paths], gone.paths.dir);
    assert.ok(
      goneFiles.some((f) => f.startsWith('/run/containerd/s/')),
      'the added node ran shims',
    );
    const t2 = Date.now();
    await removeClusterNode(cluster, gone.name);
    t.diagnostic(`node removed in ${Date.now() - t2} ms`);
    assert.deepEqual(await nodeLeftovers(gone, goneFiles, [...cluster.nodes, kept]), []);
    assert.equal((await nodeStatus(cluster.kubectl)).has(gone.name), false, 'its Node object is deleted');
    const state = readClusterState(cluster.dir);
    assert.deepEqual(
      state.network.nodes.map((n) => n.name),
      ['node-0', 'node-1', 'node-2', 'node-4'],
      'the state file lists the nodes there are',
    );
    assert.equal(state.nextNodeIndex, 5, 'a removed node’s index is not used again');
    const footprint = clusterFootprint(state);
    t.diagnostic(`before stop: ${footprint.pids.length} processes, ${footprint.mounts.length} mounts`);
    t.diagnostic(`host files: ${footprint.hostFiles.join(' ')}`);
    assert.ok(footprint.pids.length >= 4 * 3, 'kubelets, containerds and pods were running');
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
  });

  test('a cluster whose owner was SIGKILLed is torn down from its state file', async (t) => {
    const before = await hostBaseline();
    // A test’s own failure is reported as such, its cleanup’s failure apart (not in its place).
    const cleanup = cleanupFor(t);
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
    const handle = clusterHandle(info);
    await populate(handle);
    // A node added by another process than the cluster's owner is in the state file too.
    await populate(handle, [await addClusterNode(handle, { cleanup })]);
    const state: ClusterState = readClusterState(clusterDir);
    assert.ok(
      state.network.nodes.some((n) => n.name === 'node-3'),
      'the added node is recorded',
    );
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
  });
});
