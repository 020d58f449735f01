import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import {
  Cleanup,
  type DotmeshNode,
  type DotmeshTestCluster,
  processTree,
  skipUnless,
  startDotmeshCluster,
  waitFor,
} from '@dotmesh/testkit';
import { commit, procure, writeRandom } from './cluster-helpers.ts';

/**
 * R5 on a cluster: canary credentials (the admin's API key and password, a user's password)
 * are used through two nodes that pass calls to each other and hand a branch over; afterwards
 * they appear nowhere in etcd — not in any key or value of the whole keyspace, not in any file
 * of any of the three members' data directories (WAL, snapshots, database) — nor in either
 * node's files (logs, config, TLS), replies, argv or environment. The store holds verifiers
 * only; a forwarded call carries the caller, never the credentials. Node 2 joined with a join
 * token: its secret is nowhere either, and the cluster CA's key is only on node 1, in
 * `<state dir>/tls/ca-key.pem` (never in etcd, on node 2, in argv or environment).
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);
const CANARY_KEY = 'CANARYCLUSTERKEYH8V2QK';
const CANARY_PASSWORD = 'canary-cluster-password-5d9e1a';
const CANARY_USER_PASSWORD = 'canary-user-password-7f3b2c';
const CANARIES = [CANARY_KEY, CANARY_PASSWORD, CANARY_USER_PASSWORD];

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, entry.name);
    // The pool (its file and mount) holds user data, not the server's.
    if (entry.isDirectory() && entry.name !== 'mnt' && entry.name !== 'container_mnt') out.push(...(await filesUnder(p)));
    else if (entry.isFile() && entry.name !== 'dotmesh_data') out.push(p);
  }
  return out;
}

const leaks = (text: string | Buffer) => [...CANARIES, ...joinSecrets].filter((c) => text.includes(c));
/** The secrets of the join tokens node 2 joined with, and the body of the cluster CA's key. */
const joinSecrets: string[] = [];

describe('canary credentials never leak on a cluster (R5, two nodes, three etcd members)', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  let n1: DotmeshNode;
  let n2: DotmeshNode;
  let caKeyBody: string;
  const replies: string[] = [];
  before(async () => {
    cluster = await startDotmeshCluster({
      cleanup,
      nodes: 2,
      etcdMembers: 3,
      spareHosts: 1,
      apiKey: CANARY_KEY,
      password: CANARY_PASSWORD,
    });
    [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
    assert.equal(cluster.joinTokens.length, 1, 'node 2 joined with a token');
    joinSecrets.push(...cluster.joinTokens.map((t) => t.split('.')[1]!));
    caKeyBody = (await readFile(cluster.ca.caKey, 'utf8'))
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('-----'))
      .join('');
  });
  after(() => cleanup.run());

  test('use the canaries through both nodes: forwarded calls, a handoff, failures', async () => {
    const byPassword = n2.client('admin', CANARY_PASSWORD);
    await writeRandom(n1, 'canary', 'data');
    // Passed on from node 2 to node 1 (the master), authenticated by password on node 2.
    await byPassword.call('Commit', { Namespace: 'admin', Name: 'canary', Branch: '', Message: 'm', Metadata: { note: 'hi' } });
    await n2.admin.call('RegisterNewUser', { Name: 'carol', Email: 'carol@example.com', Password: CANARY_USER_PASSWORD });
    const carolKey = (await n1.client('carol', CANARY_USER_PASSWORD).call('GetApiKey', null)).ApiKey;
    const carol = n1.client('carol', carolKey);
    await carol.call('Create', { Namespace: 'carol', Name: 'hers' });
    await n2.client('carol', CANARY_USER_PASSWORD).call('Commit', {
      Namespace: 'carol',
      Name: 'hers',
      Branch: '',
      Message: 'through node 2',
      Metadata: {},
    });
    await procure(n2, 'canary'); // a handoff: node 1 sends the branch to node 2
    await commit(n1, 'canary', 'passed on to the new master');
    for (const [user, bad] of [
      ['admin', `${CANARY_PASSWORD}x`],
      ['admin', `x${CANARY_KEY}`],
      ['carol', `${CANARY_USER_PASSWORD}!`],
    ] as const) {
      await assert.rejects(n2.client(user, bad).call('Ping', null), (e: Error) => {
        replies.push(e.message);
        return true;
      });
    }
    await assert.rejects(
      n1.client('carol', CANARY_USER_PASSWORD).call('Commit', {
        Namespace: 'admin',
        Name: 'canary',
        Branch: '',
        Message: 'not hers',
        Metadata: {},
      }),
      (e: Error) => {
        replies.push(e.message);
        return true;
      },
    );
    for (const n of [n1, n2]) {
      replies.push(JSON.stringify(await n.admin.call('DumpInternalState', '')));
      replies.push(JSON.stringify(await n.admin.call('DumpEtcd', { Prefix: '' })));
      replies.push(JSON.stringify(await n.admin.call('AllDotsAndBranches', null)));
    }
    assert.deepEqual(await n2.admin.call('GetApiKey', null), { ApiKey: CANARY_KEY });
    assert.deepEqual(await byPassword.call('GetApiKey', null), { ApiKey: CANARY_KEY }, 'the password opens the sealed key');
  });

  test('no reply, log, file, argv or environment of either node holds a canary', async () => {
    for (const text of replies) assert.deepEqual(leaks(text), [], `a reply leaks: ${text.slice(0, 200)}`);
    for (const n of [n1, n2]) {
      const files = await filesUnder(n.dir);
      assert.ok(files.some((f) => f.endsWith('dotmesh-server.log')));
      assert.ok(files.some((f) => f.endsWith('config.json')));
      for (const f of files) assert.deepEqual(leaks(await readFile(f)), [], `${f} leaks`);
      // The CA key (PEM lines joined: a file holding it keeps its body) only where documented.
      const caKeyFile = join(n.dir, 'server', 'tls', 'ca-key.pem');
      for (const f of files) {
        const flat = (await readFile(f, 'utf8')).replaceAll('\n', '');
        assert.equal(flat.includes(caKeyBody), f === caKeyFile && n === n1, `${f}: the CA key only on node 1, in ca-key.pem`);
      }
      for (const pid of processTree(n.process.pid)) {
        for (const part of ['cmdline', 'environ']) {
          const text = await readFile(`/proc/${pid}/${part}`).catch(() => Buffer.alloc(0));
          assert.deepEqual(leaks(text), [], `/proc/${pid}/${part}`);
          assert.ok(!text.includes(caKeyBody), `/proc/${pid}/${part} holds the CA key`);
        }
      }
    }
  });

  test('etcd: no key or value of the whole keyspace, no file of any member’s data directory holds a canary', async () => {
    const kvs = await cluster.etcd.keys('');
    assert.ok(
      kvs.some((kv) => kv.key.startsWith('dotmesh.io/users/users/')),
      'the users are in the keyspace read',
    );
    assert.ok(kvs.some((kv) => kv.key.startsWith('dotmesh.io/servers/addresses/')));
    assert.ok(
      kvs.some((kv) => kv.key.startsWith('dotmesh.io/join/tokens/')),
      'the join token (its verifier) is in the keyspace read',
    );
    for (const kv of kvs) {
      assert.deepEqual(leaks(`${kv.key}=${kv.value}`), [], `etcd key ${kv.key}`);
      assert.ok(!kv.value.replaceAll('\\n', '').includes(caKeyBody), `etcd key ${kv.key} holds the CA key`);
    }
    assert.equal(cluster.etcd.dataDirs.length, 3);
    for (const dir of cluster.etcd.dataDirs) {
      const files = await filesUnder(dir);
      assert.ok(
        files.some((f) => f.endsWith('.wal')),
        `${dir}: the WAL is among the files checked`,
      );
      assert.ok(
        files.some((f) => f.endsWith('/db')),
        `${dir}: and the database`,
      );
      for (const f of files) {
        const content = await readFile(f);
        assert.deepEqual(leaks(content), [], `${f} leaks`);
        assert.ok(!content.includes(caKeyBody.slice(0, 40)), `${f} holds the CA key`);
      }
    }
  });

  test('a host joins while one of the three etcd members is down, and leaves no secret either', async () => {
    await cluster.etcd.kill9Member(2);
    try {
      const n3 = await cluster.addNode({ host: cluster.spares[0]! }).catch(async (e: unknown) => {
        throw new Error(`${(e as Error).message}\n${await cluster.logs(3000)}`, { cause: e });
      });
      const secret = cluster.joinTokens.at(-1)!.split('.')[1]!;
      const servers = (await n1.admin.call('AllDotsAndBranches', null)).Servers.map((sv) => sv.Id);
      assert.ok(servers.includes(n3.nodeId), 'node 1 sees the node that joined');
      // It answers for the cluster: the same List as node 1, once the background replication to
      // the new node (which changes both views' server states) has settled.
      let lists: [unknown, unknown] = [undefined, undefined];
      await waitFor(
        async () => {
          lists = [await n3.admin.call('List', null), await n1.admin.call('List', null)];
          return isDeepStrictEqual(lists[0], lists[1]);
        },
        { timeoutMs: 60_000, intervalMs: 500, what: 'node 3 and node 1 answering the same List' },
      ).catch(() => assert.deepEqual(lists[0], lists[1], 'it answers for the cluster'));
      for (const f of await filesUnder(n3.dir)) {
        const content = await readFile(f);
        assert.ok(!content.includes(secret), `${f} holds the token secret`);
        assert.ok(!content.toString('utf8').replaceAll('\n', '').includes(caKeyBody), `${f} holds the CA key`);
      }
      for (const pid of processTree(n3.process.pid)) {
        for (const part of ['cmdline', 'environ']) {
          const text = await readFile(`/proc/${pid}/${part}`).catch(() => Buffer.alloc(0));
          assert.ok(!text.includes(secret), `/proc/${pid}/${part}`);
        }
      }
    } finally {
      await cluster.etcd.startMember(2);
    }
  });
});
