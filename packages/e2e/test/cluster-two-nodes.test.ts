import assert from 'node:assert/strict';
import { readFile, readlink, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type DotmeshNode, type DotmeshTestCluster, skipUnless, startDotmeshCluster, waitFor } from '@dotmesh/testkit';
import {
  commit,
  commitIds,
  commitsOf,
  fileHash,
  holdsVolume,
  listedMaster,
  lookup,
  masterKey,
  procure,
  untilMasterEverywhere,
  writeRandom,
} from './cluster-helpers.ts';

/**
 * Two nodes of one cluster (real servers on their own pools and hosts, one etcd): the
 * original's TestTwoNodesSameCluster (Move, SmashBranchMaster, DumpInternalState) and
 * DeleteQuicklyOnOtherNode, through the built `dm` run on each node's host.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

/** `latency` lines of `dm dot show -H`: server → role ("master" | "replica"). */
function latencyRoles(out: string): Map<string, string> {
  const roles = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [kind, server, role] = line.split('\t');
    if (kind === 'latency' && server && role) roles.set(server, role);
  }
  return roles;
}

/** The SERVER column of `dm list -H` for a dot. */
function listedServer(out: string, dot: string): string | undefined {
  return out
    .split('\n')
    .map((l) => l.split('\t'))
    .find((cells) => cells[0] === dot)?.[2];
}

describe('two nodes of one cluster', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  before(async () => {
    // Without background replication: these are the original's two-node tests, where a node
    // holds what it made or was handed, and `dm dot show` has commits to call missing.
    // cluster-replication.test.ts runs replication.
    cluster = await startDotmeshCluster({ cleanup, nodes: 2, extraConfig: { replicate: false } });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
  });
  after(() => cleanup.run());

  test('Move: what node 1 wrote, committed or not, is there when dm mounts the dot on node 2', async () => {
    const committed = await writeRandom(n1, 'move', 'HELLO', 1024 * 1024);
    await commit(n1, 'move', 'on node 1');
    await writeFile(join(await procure(n1, 'move'), 'WORLD'), 'uncommitted on node 1');
    const before = await commitIds(n1, 'move');
    const mnt = join(n2.home, 'move-mnt');
    await n2.ok(['mount', 'move', mnt]);
    assert.equal(await fileHash(join(mnt, 'HELLO')), committed);
    assert.equal(await readFile(join(mnt, 'WORLD'), 'utf8'), 'uncommitted on node 1');
    const after = await commitsOf(n2, 'move');
    assert.deepEqual(
      after.slice(0, before.length).map((c) => c.Id),
      before,
      'every commit moved, in order',
    );
    assert.equal(after.length, before.length + 1);
    assert.equal(after.at(-1)?.Metadata.type, 'migration', 'the uncommitted data was committed by the handoff');
    assert.equal(listedServer(await n2.ok(['list', '-H']), 'move'), n2.nodeId, 'dm list names node 2 as SERVER');
    assert.equal(listedServer(await n1.ok(['list', '-H']), 'move'), n2.nodeId, 'from node 1 too');
    const id = await lookup(n1, 'move');
    assert.equal(await masterKey(cluster, id), n2.nodeId);
    assert.ok(holdsVolume(n1, id) && holdsVolume(n2, id), 'node 1 keeps its (inactive) copy');
  });

  test('a mount on node 2 is refused while a process works in the dot on node 1, its master: IN_USE naming it, nothing moves; once it ends, the mount moves the dot', async () => {
    const hash = await writeRandom(n1, 'busy', 'data');
    await commit(n1, 'busy', 'on node 1');
    const path = await procure(n1, 'busy');
    const id = await lookup(n1, 'busy');
    const before = await commitIds(n1, 'busy');
    // A process with its working directory in the dot, on node 1's host (as a shell or a container would).
    const worker = n1.host.spawn('sh', ['-c', `cd '${path}' && exec sleep 600`], { cleanup });
    const real = await realpath(path);
    await waitFor(async () => (await readlink(`/proc/${worker.pid}/cwd`).catch(() => '')) === real, {
      what: `the worker in the dot (${real})`,
    });
    const mnt = join(n2.home, 'busy-mnt');
    const refused = await n2.dm(['mount', 'busy', mnt]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`is in use: process ${worker.pid} \\(sleep\\)`), refused.stderr);
    assert.equal(await masterKey(cluster, id), n1.nodeId, 'the master stays node 1');
    assert.deepEqual(await commitIds(n1, 'busy'), before, 'no migration commit');
    assert.deepEqual(await commitIds(n2, 'busy'), before, 'node 2 sees the same');
    assert.ok(!holdsVolume(n2, id), 'nothing was sent to node 2');
    await worker.stop();
    await n2.ok(['mount', 'busy', mnt]);
    assert.equal(await fileHash(join(mnt, 'data')), hash);
    assert.equal(await masterKey(cluster, id), n2.nodeId);
  });

  test('SmashBranchMaster: dm dot smash-branch-master makes the replica master; with no server id, the serving node', async () => {
    await writeRandom(n1, 'smash', 'HELLO');
    await procure(n2, 'smash'); // both nodes hold it now: node 2 masters, node 1 keeps a copy
    const before = latencyRoles(await n1.ok(['dot', 'show', '-H', 'smash']));
    assert.deepEqual(Object.fromEntries(before), { [n2.nodeId]: 'master', [n1.nodeId]: 'replica' });
    const out = await n1.ok(['dot', 'smash-branch-master', 'smash', 'master', n1.nodeId]);
    assert.match(out, new RegExp(`^Node ${n1.nodeId} is now the master of branch master of smash \\(`));
    await untilMasterEverywhere([n1, n2], 'smash', n1.nodeId);
    for (const node of [n1, n2]) {
      const roles = latencyRoles(await node.ok(['dot', 'show', '-H', 'smash']));
      assert.deepEqual(
        Object.fromEntries(roles),
        { [n1.nodeId]: 'master', [n2.nodeId]: 'replica' },
        `seen from node ${node.index}`,
      );
    }
    // The new master takes commits, also those sent to the other node.
    const id = await lookup(n2, 'smash');
    const via2 = await commit(n2, 'smash', 'through node 2 after the smash');
    assert.ok((await commitIds(n1, 'smash')).includes(via2));
    assert.ok(holdsVolume(n1, id));
    // No server id: the node the current remote points at.
    await n2.ok(['dot', 'smash-branch-master', 'smash', 'master']);
    await untilMasterEverywhere([n1, n2], 'smash', n2.nodeId);
    assert.equal(await masterKey(cluster, id), n2.nodeId);
  });

  test('dm dot show: the replication lines name the master and what each node is missing', async () => {
    await writeRandom(n1, 'shown', 'A');
    const first = await commit(n1, 'shown', 'one');
    await procure(n2, 'shown'); // node 1 keeps the history up to `first`
    const second = await commit(n2, 'shown', 'two on node 2');
    const human = await n1.ok(['dot', 'show', 'shown']);
    assert.match(human, /\n {3}Replication Status:\n/);
    assert.match(human, new RegExp(`\\n {4}server ${n2.nodeId} \\[MASTER\\] \\(status: active, \\d+ commits\\) is up to date`));
    assert.match(human, new RegExp(`\\n {4}server ${n1.nodeId} {10}\\(status: inactive[^)]*\\) is missing \\[${second}\\]`));
    const scripting = await n2.ok(['dot', 'show', '-H', 'shown']);
    assert.ok(scripting.split('\n').includes(`latency\t${n1.nodeId}\treplica\t${statusOf(scripting, n1.nodeId)}\t${second}`));
    assert.ok(!human.includes(`is missing [${first}`), 'node 1 holds the commits it had');
  });

  test('DumpInternalState (dm debug): this node, every live node, every branch’s master node', async () => {
    const out = await n1.ok(['debug', 'DotmeshRPC.DumpInternalState']);
    assert.ok(out.length > 10);
    const state = JSON.parse(out) as Record<string, string>;
    assert.equal(state.myNodeId, n1.nodeId);
    for (const n of [n1, n2]) {
      assert.equal(state[`nodes.${n.nodeId}.addresses`], n.host.address);
      assert.equal(state[`nodes.${n.nodeId}.clusterPort`], String(n.clusterPort));
    }
    assert.equal(state[`masters.${await lookup(n1, 'move')}`], n2.nodeId);
    assert.equal(state[`masters.${await lookup(n1, 'smash')}`], n2.nodeId);
  });

  test('DeleteQuicklyOnOtherNode: deleted through the other node, every copy goes, the name is free at once', async () => {
    await writeRandom(n1, 'quick', 'HELLO');
    await commit(n1, 'quick', 'one');
    const id = await lookup(n2, 'quick');
    await n2.ok(['dot', 'delete', '-f', 'quick']);
    for (const node of [n1, n2]) {
      assert.equal(await node.admin.call('Exists', { Namespace: 'admin', Name: 'quick', Branch: '' }), '');
    }
    await waitFor(() => !holdsVolume(n1, id), { timeoutMs: 20_000, what: 'node 1 to destroy its volume' });
    await n2.ok(['init', 'quick']);
    const again = await lookup(n1, 'quick');
    assert.notEqual(again, id);
    assert.equal(await listedMaster(n1, 'quick'), n2.nodeId, 'made again on node 2, which masters it');
    assert.deepEqual((await commitsOf(n1, 'quick')).length, 1, 'a new dot: only its initial commit');
  });

  test('a node that was down during the delete removes its copy when it returns', async () => {
    await writeRandom(n1, 'while-down', 'HELLO');
    await commit(n1, 'while-down', 'one');
    await procure(n2, 'while-down'); // node 2 masters it; node 1 keeps a copy
    const id = await lookup(n1, 'while-down');
    assert.ok(holdsVolume(n1, id));
    await n1.kill9();
    await n2.ok(['dot', 'delete', '-f', 'while-down']);
    assert.ok(!holdsVolume(n2, id));
    assert.ok(holdsVolume(n1, id), 'node 1 is down: its copy is still in its pool');
    await n1.start();
    await waitFor(() => !holdsVolume(n1, id), { timeoutMs: 20_000, what: 'node 1 to destroy its copy at start' });
    const state = (await n1.admin.call('DumpInternalState', id)) as Record<string, string>;
    assert.deepEqual(Object.keys(state), [], 'node 1 indexes nothing of it');
    assert.deepEqual(
      (await cluster.etcd.keys('dotmesh.io/servers/')).filter((kv) => kv.key.includes(id)),
      [],
      'no node advertises a copy or a commit of it',
    );
    await n1.ok(['init', 'while-down']);
    assert.equal(await listedMaster(n2, 'while-down'), n1.nodeId, 'the name is free');
  });
});

/** The status field of a server's latency line. */
function statusOf(out: string, server: string): string {
  const line = out.split('\n').find((l) => l.startsWith(`latency\t${server}\t`));
  return line?.split('\t')[3] ?? '';
}
