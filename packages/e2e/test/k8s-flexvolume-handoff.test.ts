import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  claimAtData,
  type DotmeshTestCluster,
  deleteAndWait,
  installedDriverDir,
  podManifest,
  runPodToCompletion,
  skipUnless,
  startDotmeshCluster,
  type TestCluster,
  testNamespace,
  useTestCluster,
  waitFor,
} from '@dotmesh/testkit';
import { FLEX_DRIVER_BIN, staticFlexVolume, writeRandomScript } from './k8s-volumes.ts';

/**
 * A pod that moves to another node finds its dot there, with its history: a Dotmesh cluster of
 * two nodes (host processes on one etcd; k8s-operator.test.ts does the same with the
 * operator's pods), node i
 * installing its FlexVolume driver into Kubernetes node-i's plugin directory. A pod on node-0
 * writes through a static PV; a pod on node-1 then mounts the same dot, which hands the branch
 * over (Procure through node-1's server); while that pod uses it, a pod on node-0 cannot mount
 * it (the kubelet reports the IN_USE refusal).
 */
describe('FlexVolume across nodes: a handoff when a pod moves', {
  skip: skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd', 'k8s']),
  timeout: 20 * 60_000,
}, () => {
  const cleanup = new Cleanup();
  const suite = { after: (fn: () => unknown) => cleanup.add(fn) };
  let k8s: TestCluster;
  let dotmesh: DotmeshTestCluster;
  let ns: string;
  after(() => cleanup.run());

  before(async () => {
    k8s = await useTestCluster(suite);
    ns = await testNamespace(k8s.kubectl, suite, 'dmtest-flexmove');
    for (const node of k8s.nodes.slice(0, 2)) {
      cleanup.add(() => rm(installedDriverDir(node), { recursive: true, force: true }), 'remove an installed FlexVolume driver');
    }
    dotmesh = await startDotmeshCluster({ cleanup, nodes: 2, poolSize: '2G' });
    // Each Dotmesh node serves the FlexVolume directory of one Kubernetes node.
    for (const [i, node] of dotmesh.nodes.entries()) {
      await node.configure({ flexVolumeDir: k8s.nodes[i]!.paths.flexVolumeDir, flexVolumeDriver: FLEX_DRIVER_BIN });
      await node.stop();
      await node.start();
      await waitFor(() => existsSync(join(installedDriverDir(k8s.nodes[i]!), 'dm.sock')), {
        timeoutMs: 60_000,
        what: `node ${i}'s FlexVolume driver installed`,
      });
    }
    cleanup.add(() => deleteAndWait(k8s, ['pv', `flex-move-${ns}`]), 'delete the static PV');
    cleanup.add(() => deleteAndWait(k8s, ['pvc', '--all', '-n', ns]), 'delete the claims');
    cleanup.add(() => deleteAndWait(k8s, ['pod', '--all', '-n', ns]), 'delete the pods while the servers run');
  });

  const pod = (name: string, nodeIndex: number, script: string) =>
    podManifest({
      name,
      namespace: ns,
      node: k8s.nodes[nodeIndex]!.name,
      image: k8s.images.busybox.ref,
      command: ['sh', '-c', script],
      ...claimAtData('moving'),
    });

  test('written on node-0, read on node-1 after the handoff (with the commit made on node-0); node-0 cannot mount it meanwhile', async () => {
    const [a, b] = dotmesh.nodes;
    await staticFlexVolume(k8s, { pv: `flex-move-${ns}`, namespace: ns, claim: 'moving', dot: 'moving' });

    const written = (await runPodToCompletion(k8s.kubectl, pod('writer', 0, writeRandomScript('blob', false)), 180_000)).trim();
    assert.match(written, /^[0-9a-f]{64}$/);
    await deleteAndWait(k8s, ['pod', 'writer', '-n', ns]);
    const fsId = await a!.admin.call('Lookup', { Namespace: 'admin', Name: 'moving', Branch: '' });
    await waitFor(async () => (await a!.admin.call('BranchPublications', fsId)).Uses.length === 0, {
      timeoutMs: 120_000,
      what: 'node-0 unmounted the volume',
    });
    const commit = await a!.admin.call('Commit', {
      Namespace: 'admin',
      Name: 'moving',
      Branch: '',
      Message: 'on node 0',
      Metadata: {},
    });

    await k8s.kubectl(['apply', '-f', '-'], {
      input: pod('reader', 1, 'sha256sum /data/blob | cut -d" " -f1 && echo read && sleep 3600'),
    });
    const read = await waitFor(
      async () => {
        const out = await k8s.kubectl(['logs', 'reader', '-n', ns]).then(
          (r) => r.stdout,
          () => '',
        );
        return out.includes('read') ? out.trim().split('\n')[0] : undefined;
      },
      { timeoutMs: 180_000, what: 'the pod on node-1 read the data' },
    );
    assert.equal(read, written, 'the data moved with the branch');
    const publications = await b!.admin.call('BranchPublications', fsId);
    assert.equal(publications.Node, b!.nodeId, 'node-1 masters the branch and uses it');
    const commits = await b!.admin.call('Commits', { Namespace: 'admin', Name: 'moving', Branch: '' });
    assert.ok(
      commits.some((c) => c.Id === commit),
      'the history came along',
    );

    // Used on node-1: a pod on node-0 is refused the mount (no handoff while in use).
    await k8s.kubectl(['apply', '-f', '-'], { input: pod('blocked', 0, 'cat /data/blob') });
    const refusal = await waitFor(
      async () => {
        const { stdout } = await k8s.kubectl([
          'get',
          'events',
          '-n',
          ns,
          '--field-selector',
          'involvedObject.name=blocked,reason=FailedMount',
          '-o',
          'jsonpath={range .items[*]}{.message}{"\\n"}{end}',
        ]);
        return /in use on node/.test(stdout) ? stdout : undefined;
      },
      { timeoutMs: 120_000, what: 'the kubelet reports the refused mount' },
    );
    assert.match(refusal, new RegExp(`in use on node ${b!.nodeId}`));
    assert.equal((await k8s.kubectl(['get', 'pod', 'blocked', '-n', ns, '-o', 'jsonpath={.status.phase}'])).stdout, 'Pending');
    await deleteAndWait(k8s, ['pod', 'blocked', 'reader', '-n', ns]);
    await waitFor(async () => (await b!.admin.call('BranchPublications', fsId)).Uses.length === 0, {
      timeoutMs: 120_000,
      what: 'node-1 unmounted the volume',
    });
  });
});
