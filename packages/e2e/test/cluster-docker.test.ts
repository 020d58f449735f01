import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster } from '@dotmesh/testkit';
import { commit, commitsOf, lookup, masterKey, procure } from './cluster-helpers.ts';
import { startTestDocker, type TestDocker } from './docker-harness.ts';

/**
 * Docker on a node that does not master the dot: a real dockerd uses node 2's volume plugin.
 * `docker run -v <dot>:/foo` there moves the dot from node 1 (a handoff: node 1's uncommitted
 * data committed as `migration`, the master key moved), and while a container uses the dot on
 * node 2 a handoff back to node 1 is refused (IN_USE naming the container), until it stops.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd', 'docker']);

describe('Docker volumes on a cluster: a mount on another node moves the dot; a container holds it there', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  let d: TestDocker;

  before(async () => {
    d = await startTestDocker(cleanup);
    cluster = await startDotmeshCluster({ cleanup, nodes: 2, extraConfig: { replicate: false } });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
    // Node 2 serves the volume plugin this dockerd uses, and follows its containers.
    await n2.configure({ dockerPluginSocket: d.pluginSocket, dockerSocket: d.engine.socket });
    await n2.stop();
    await n2.start();
    d.removeContainersAtCleanup();
  });
  after(() => cleanup.run());

  test('docker run -v on node 2 moves the dot from node 1 with its uncommitted data', async () => {
    const mount = await procure(n1, 'apples');
    await writeFile(join(mount, 'committed'), 'one');
    await commit(n1, 'apples', 'on node 1');
    await writeFile(join(mount, 'uncommitted'), 'two');
    const id = await lookup(n1, 'apples');
    assert.equal(await masterKey(cluster, id), n1.nodeId);

    const out = await d.run('apples', 'cat /foo/committed /foo/uncommitted');
    assert.equal(out, 'onetwo');
    assert.equal(await masterKey(cluster, id), n2.nodeId, 'node 2 masters the dot now');
    const commits = await commitsOf(n1, 'apples');
    assert.equal(commits.at(-1)?.Metadata.type, 'migration', 'node 1 committed the uncommitted data first');
  });

  test('a container using the dot on node 2 keeps it there: a mount on node 1 is refused naming it, then moves it once it stopped', async () => {
    const id = await lookup(n1, 'apples');
    const name = `holder-${randomBytes(3).toString('hex')}`;
    await d.start(name, 'apples');
    const refused = await n1.dm(['mount', 'apples', join(n1.home, 'apples-mnt')]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`while containers are running on it here: /?${name}`), refused.stderr);
    assert.equal(await masterKey(cluster, id), n2.nodeId, 'the master stays node 2');

    await d.docker(['stop', name]);
    await d.docker(['rm', name]);
    await n1.ok(['mount', 'apples', join(n1.home, 'apples-mnt')]);
    assert.equal(await masterKey(cluster, id), n1.nodeId);
  });
});
