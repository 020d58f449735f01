import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  Cleanup,
  createHosts,
  detachLoopDevicesUnder,
  makeTempDir,
  skipUnless,
  type TestHost,
  unmountUnder,
  waitFor,
} from '@dotmesh/testkit';
import {
  etcdctl,
  type HostNode,
  joinArgs,
  makeHostNode,
  members,
  moveHostNode,
  nodeIdOf,
  tokenFor,
} from './cluster-host-node.ts';

/**
 * docs/cluster.md, "A host that comes back" at a new address: a three-node cluster on managed
 * etcd (init and two joins, three voting members); node 3's host dies (its server and etcd
 * member killed with -9, its links down, its pool unmounted and detached as a dead machine
 * leaves it) and its pool dir is served by another host at another address, which runs the
 * documented `dm cluster join` on it at once. The join waits for node 3's lease to expire, then
 * the host rejoins as node 3 (new certificates for its address), its etcd member moves to the
 * new peer URL through the live members (`member update`) and starts on its data: node 3
 * serves every dot and commit of its pool (ids and file hashes), its member is healthy at the
 * new URL, commits work through every node, and there is no second node or member. Test hosts
 * are network namespaces; the members are real etcd processes in them.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);

const stateFile = (n: HostNode, name: string) => join(n.poolDir, 'server', name);
const pidIn = async (file: string) => Number.parseInt(await readFile(file, 'utf8'), 10);
const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');
/** The commit ids `dm log` lists. */
const logIds = (log: string) => [...log.matchAll(/^commit (\S+)/gm)].map((m) => m[1]!);
/** The SERVER column of `dm list -H` for `dot`. */
const masterOf = (list: string, dot: string) =>
  list
    .split('\n')
    .find((l) => l.startsWith(`${dot}\t`))
    ?.split('\t')[2];

describe('a pool moved to a host at a new address serves again as its node (rejoin, etcd member peer URL updated)', {
  skip,
}, () => {
  const cleanup = new Cleanup();
  let hosts: [TestHost, TestHost, TestHost, TestHost];
  let n1: HostNode;
  let n2: HostNode;
  let n3: HostNode;
  let tokens: string;
  let apiKey: string;
  after(() => cleanup.run());
  before(async () => {
    hosts = (await createHosts({ cleanup, count: 4 })) as typeof hosts;
    [n1, n2, n3] = (await Promise.all(hosts.slice(0, 3).map((h) => makeHostNode(cleanup, h)))) as [HostNode, HostNode, HostNode];
    tokens = await makeTempDir('tokens', cleanup);
  });

  test('node 3 moves to a host at another address and serves every dot and commit as node 3', async () => {
    await n1.ok(['cluster', 'init', '--store', 'etcd', ...n1.nodeArgs()]);
    for (const [i, n] of [n2, n3].entries()) {
      const file = join(tokens, `join-${i}`);
      await n.ok(joinArgs(n, { ...(await tokenFor(n1, file)), file }));
    }
    apiKey = (JSON.parse(await n1.ok(['debug', 'GetApiKey'])) as { ApiKey: string }).ApiKey;
    for (const n of [n2, n3])
      await n.ok(['remote', 'add', 'local', `admin@${n.host.address}:${n.port}`], { DOTMESH_PASSWORD: apiKey });
    const ids = (await Promise.all([n1, n2, n3].map(nodeIdOf))) as [string, string, string];
    assert.equal((await members(n1)).filter((m) => m.isLearner !== true).length, 3, 'three voting members');

    // Node 3's data: a dot it masters, pinned to it (it waits for node 3 rather than fail over),
    // two commits; and a dot node 1 masters.
    await n3.ok(['init', 'moved']);
    await n3.ok(['dot', 'pin', 'moved']);
    const mnt = join(n3.home, 'moved-mnt');
    await n3.ok(['mount', 'moved', mnt]);
    await n3.ok(['switch', 'moved']);
    const files: Record<string, string> = { a: 'first file\n', b: `${'x'.repeat(100_000)}\n` };
    await writeFile(join(mnt, 'a'), files.a!);
    await n3.ok(['commit', '-m', 'one']);
    await writeFile(join(mnt, 'b'), files.b!);
    await n3.ok(['commit', '-m', 'two']);
    const commits = logIds(await n3.ok(['log']));
    assert.equal(commits.length, 3, "the dot's first commit and two");
    await n1.ok(['init', 'elsewhere']);
    await n1.ok(['switch', 'elsewhere']);
    await n1.ok(['commit', '-m', 'on node 1']);
    const oldCert = new X509Certificate(await readFile(stateFile(n3, 'tls/node.pem')));
    const oldPeerUrl = (await members(n1)).find((m) => m.name === ids[2])?.peerURLs[0];
    assert.ok(oldPeerUrl?.includes(n3.host.address), String(oldPeerUrl));

    // Node 3's host dies: server and member killed, links down, its mounts and loop device gone.
    const token = join(tokens, 'rejoin');
    const t = { ...(await tokenFor(n1, token)), file: token };
    for (const f of ['dotmesh-server.pid', 'etcd.pid']) process.kill(await pidIn(stateFile(n3, f)), 'SIGKILL');
    for (const dev of n3.host.devices) await n3.host.exec('ip', ['link', 'set', dev, 'down']);
    await unmountUnder(n3.home);
    await unmountUnder(n3.poolDir);
    await detachLoopDevicesUnder(n3.poolDir);

    // Its pool dir on another host, at once (node 3 is still live for the cluster until its lease expires).
    const moved = await moveHostNode(cleanup, n3, hosts[3]);
    const joined = await moved.ok(joinArgs(moved, t));
    assert.match(joined, /this node joined the cluster through/);
    assert.match(joined, /This host runs etcd member [0-9a-f]+ of the cluster's store \(voting; 3 voting of 3 member\(s\)\)/);
    await moved.ok(['remote', 'add', 'local', `admin@${moved.host.address}:${moved.port}`], { DOTMESH_PASSWORD: apiKey });
    assert.equal(await nodeIdOf(moved), ids[2], 'the same node');
    const log = await readFile(stateFile(moved, 'dotmesh-server.log'), 'utf8');
    assert.match(log, /its etcd member's peer URL was updated/);

    // New certificates for the new address, of the cluster CA.
    const ca = new X509Certificate(await readFile(stateFile(n1, 'tls/ca.pem')));
    for (const f of ['node.pem', 'etcd.pem']) {
      const cert = new X509Certificate(await readFile(stateFile(moved, `tls/${f}`)));
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${f} is of the cluster CA`);
      assert.ok(cert.subject.split('\n').includes(`CN=${ids[2]}`), `${f} names node 3`);
      assert.ok(cert.subjectAltName?.split(', ').includes(`IP Address:${moved.host.address}`), `${f} names the new address`);
    }
    assert.notEqual(new X509Certificate(await readFile(stateFile(moved, 'tls/node.pem'))).serialNumber, oldCert.serialNumber);

    // The member: one per node, node 3's at the new peer URL, healthy there.
    const newPeerUrl = (oldPeerUrl ?? '').replace(n3.host.address, moved.host.address);
    await waitFor(
      async () => {
        const list = await members(n1);
        const three = list.find((m) => m.name === ids[2]);
        return list.length === 3 && three?.peerURLs.join() === newPeerUrl && three.clientURLs?.[0]?.includes(moved.host.address);
      },
      { timeoutMs: 30_000, intervalMs: 500, what: "node 3's member listed at its new peer and client URLs" },
    );
    const list = await members(n1);
    assert.deepEqual(list.map((m) => m.name).sort(), [...ids].sort(), 'no second member');
    assert.ok(list.every((m) => m.isLearner !== true && !m.peerURLs.some((u) => u.includes(n3.host.address))));
    const health = await etcdctl(moved, ['endpoint', 'health', '-w', 'json']);
    assert.match(health, /"health":true/, health);

    // The cluster: node 3 at the new address only, three nodes.
    for (const n of [n1, n2]) {
      await waitFor(
        async () => {
          const nodes = JSON.parse(await n.ok(['debug', 'DumpInternalState', 'nodes.'])) as Record<string, string>;
          return nodes[`nodes.${ids[2]}.addresses`] === moved.host.address;
        },
        { timeoutMs: 30_000, intervalMs: 500, what: `node 3 at its new address as ${n.host.address} sees it` },
      );
      const nodes = JSON.parse(await n.ok(['debug', 'DumpInternalState', 'nodes.'])) as Record<string, string>;
      const nodeIds = new Set(Object.keys(nodes).map((k) => k.split('.')[1]));
      assert.deepEqual([...nodeIds].sort(), [...ids].sort(), 'three nodes, none added');
    }

    // Every dot and commit of node 3's pool, served by node 3, with its data.
    assert.equal(masterOf(await n1.ok(['list', '-H']), 'moved'), ids[2]);
    assert.deepEqual(logIds(await moved.ok(['switch', 'moved']).then(() => moved.ok(['log']))), commits);
    const mnt2 = join(moved.home, 'moved-mnt');
    await moved.ok(['mount', 'moved', mnt2]);
    for (const [name, text] of Object.entries(files)) {
      assert.equal(sha256(await readFile(join(mnt2, name))), sha256(text), `${name} has its content`);
    }
    assert.match(await moved.ok(['list', '-H']), /^elsewhere\t/m);

    // Commits through every node: to node 3's dot (passed on to node 3 at its new address) and node 1's.
    for (const [n, name] of [
      [n1, 'node 1'],
      [n2, 'node 2'],
      [moved, 'node 3'],
    ] as const) {
      await n.ok(['switch', 'moved']);
      await n.ok(['commit', '-m', `through ${name} after the move`]);
      await n.ok(['switch', 'elsewhere']);
      await n.ok(['commit', '-m', `through ${name} after the move`]);
    }
    for (const dot of ['moved', 'elsewhere']) {
      await n2.ok(['switch', dot]);
      const after = await n2.ok(['log']);
      for (const name of ['node 1', 'node 2', 'node 3']) assert.match(after, new RegExp(`through ${name} after the move`), dot);
    }
    assert.deepEqual(logIds(await n2.ok(['switch', 'moved']).then(() => n2.ok(['log']))).slice(0, commits.length), commits);
  });
});
