import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DotmeshClient, TransferPollResult } from '@dotmesh/rpc';
import {
  Cleanup,
  type DotmeshNode,
  type DotmeshTestCluster,
  loadTranscript,
  SERVER_BUNDLE,
  skipUnless,
  startDotmeshCluster,
  startServerProcess,
  type TestHost,
} from '@dotmesh/testkit';
import { commitIds, lookup } from './cluster-helpers.ts';
import { waitForTransfer } from './transfer-harness.ts';

/**
 * The recorded dm 0.8.1 transcript (packages/server/test/fixtures/) replayed against each node
 * of a two-node cluster of real servers: once against node 1, which masters what it creates;
 * once against node 2 with every dot it creates moved to node 1 at once, so that every call on
 * a branch is passed on to another node. Each reply has the wire shape the original client
 * reads (HTTP 200, a non-null result, the id echoed digit for digit); the pushes, pulls and
 * clone run for real against `origin`, a single-node cluster on a third host (bob's requests go
 * there), and their outcomes are checked on both sides.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup', 'etcd']);
const FOO_MASTER_ID = '286e4f1b-eed1-4e55-a849-f4159fdb2638';
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

interface Origin {
  readonly host: TestHost;
  readonly url: string;
  readonly port: number;
  readonly bobKey: string;
  readonly bob: DotmeshClient;
  readonly applesId: string;
}

/** The final record of a transfer `client`'s server started (polled every 50 ms, up to 30 s). */
const transferEnd = async (client: DotmeshClient, id: string): Promise<TransferPollResult> =>
  (await waitForTransfer(client, id, { timeoutMs: 30_000, intervalMs: 50 })).final;

describe('the dm 0.8.1 transcript replays against every node of a cluster', { skip }, () => {
  const cleanup = new Cleanup();
  let cluster: DotmeshTestCluster;
  before(async () => {
    cluster = await startDotmeshCluster({ cleanup, nodes: 2, spareHosts: 2 });
  });
  after(() => cleanup.run());

  /** `origin`: bob (a key of his own) and alice, who owns `apples` (apple.txt = red) with bob as collaborator. */
  async function startOrigin(host: TestHost): Promise<Origin> {
    const server = await startServerProcess({ cleanup, host, serverBin: SERVER_BUNDLE });
    const admin = cluster.curl.client(host, server.url, 'admin', server.apiKey);
    const login = async (name: string) => {
      const password = `${name}-password`;
      await admin.call('RegisterNewUser', { Name: name, Email: `${name}@example.com`, Password: password });
      return (await cluster.curl.client(host, server.url, name, password).call('GetApiKey', null)).ApiKey;
    };
    const bobKey = await login('bob');
    const alice = cluster.curl.client(host, server.url, 'alice', await login('alice'));
    await alice.call('Create', { Namespace: 'alice', Name: 'apples' });
    const applesId = await alice.call('Lookup', { Namespace: 'alice', Name: 'apples', Branch: '' });
    await writeFile(join(await admin.call('Procure', { Namespace: 'alice', Name: 'apples', Subdot: '' }), 'apple.txt'), 'red');
    await alice.call('Commit', { Namespace: 'alice', Name: 'apples', Branch: '', Message: 'first apple', Metadata: {} });
    await alice.call('AddCollaborator', { MasterBranchID: applesId, Collaborator: 'bob' });
    return {
      host,
      url: server.url,
      port: server.port,
      bobKey,
      bob: cluster.curl.client(host, server.url, 'bob', bobKey),
      applesId,
    };
  }

  /**
   * Sends every recorded request to `receiver` (bob's to origin), mapping the recorder's ids to
   * real ones; with `moveTo`, each dot `receiver` creates is handed to that node at once.
   */
  async function replay(receiver: DotmeshNode, origin: Origin, moveTo?: DotmeshNode) {
    const recorded = await loadTranscript();
    const idMap = new Map<string, string>();
    const realCommits: string[] = [];
    const transfers = new Map<string, TransferPollResult>();
    let lastTransfer = '';
    for (const r of recorded) {
      if (r.command.startsWith('dm dot show')) {
        const master = r.printed.find((l) => l.startsWith('Master branch ID: '))?.match(UUID)?.[0];
        const b1 = r.printed.find((l) => l.trim().startsWith('b1 ('))?.match(UUID)?.[0];
        if (master) idMap.set(master, await lookup(receiver, 'foo'));
        if (b1) idMap.set(b1, await lookup(receiver, 'foo', 'b1'));
      }
      const request = JSON.parse(r.body) as { method: string; params: unknown };
      if (request.method === 'DotmeshRPC.GetTransfer') idMap.set(request.params as string, lastTransfer);
      let body = r.body.replace(UUID, (id) => idMap.get(id) ?? id);
      if (request.method === 'DotmeshRPC.Transfer') {
        const peer = '"Peer":"127.0.0.1","User":"bob","Port":32607,"ApiKey":"otherkey"';
        assert.ok(body.includes(peer), `${r.command}: the Transfer names origin`);
        body = body.replace(
          peer,
          `"Peer":"${origin.host.address}","User":"bob","Port":${origin.port},"ApiKey":"${origin.bobKey}"`,
        );
      }
      assert.ok(r.user === 'admin' || r.user === 'bob', `${r.command}: recorded user ${r.user}`);
      const reply =
        r.user === 'bob'
          ? await cluster.curl.post(origin.host, origin.url, 'bob', origin.bobKey, body)
          : await cluster.curl.post(receiver.host, receiver.url, 'admin', receiver.apiKey, body);
      const idText = /"id":(\d+)/.exec(r.body)![1]!;
      assert.equal(reply.status, 200, `${r.command}: HTTP status`);
      assert.ok(reply.text.includes(`"id":${idText}`), `${r.command}: id ${idText} echoed exactly in ${reply.text}`);
      const json = JSON.parse(reply.text) as Record<string, unknown>;
      assert.equal(json.jsonrpc, '2.0');
      assert.ok(!('result' in json && 'error' in json), `${r.command}: never both result and error`);
      assert.ok('result' in json && json.result !== null, `${r.command}: ${request.method} has a non-null result: ${reply.text}`);
      if (request.method === 'DotmeshRPC.Commit') {
        const fake = r.printed.map((l) => l.match(UUID)?.[0]).find((id) => id !== undefined);
        if (fake) {
          realCommits.push(json.result as string);
          idMap.set(fake, json.result as string);
        }
      }
      if (request.method === 'DotmeshRPC.Create' && moveTo) {
        const { Namespace, Name } = request.params as { Namespace: string; Name: string };
        const id = await receiver.admin.call('Lookup', { Namespace, Name, Branch: '' });
        await receiver.admin.call('MoveBranch', { BranchId: id, Node: moveTo.nodeId });
      }
      if (request.method === 'DotmeshRPC.Transfer') lastTransfer = json.result as string;
      if (request.method === 'DotmeshRPC.GetTransfer') transfers.set(r.command, await transferEnd(receiver.admin, lastTransfer));
    }
    assert.equal(realCommits.length, 3);
    return { realCommits, transfers, fooId: idMap.get(FOO_MASTER_ID) };
  }

  async function checkOutcome(receiver: DotmeshNode, origin: Origin, r: Awaited<ReturnType<typeof replay>>, master: DotmeshNode) {
    // foo has b1, master was reset; ns2/bar was deleted; the master node named. The other node,
    // whose replica may have held the commits `dm reset` dropped, keeps them on a
    // master-DIVERGED-<time> branch it masters, as the original's replicas did
    // (recoverFromDivergence).
    const branches = await receiver.admin.call('Branches', { Namespace: 'admin', Name: 'foo' });
    assert.deepEqual(
      branches.filter((b) => !b.includes('-DIVERGED-')),
      ['b1'],
    );
    for (const b of branches.filter((name) => name.includes('-DIVERGED-'))) {
      assert.match(b, /^master-DIVERGED-/);
      const fsId = await lookup(receiver, 'foo', b);
      const state = (await receiver.admin.call('DumpInternalState', `masters.${fsId}`)) as Record<string, string>;
      assert.notEqual(state[`masters.${fsId}`], master.nodeId, `${b} is a replica's, not the master's`);
    }
    assert.equal((await commitIds(receiver, 'foo')).at(-1), r.realCommits[0]);
    assert.equal(await receiver.admin.call('Exists', { Namespace: 'ns2', Name: 'bar', Branch: '' }), '');
    assert.equal((await receiver.admin.call('List', null)).admin?.foo?.Master, master.nodeId);
    const outcome = (command: string) => {
      const t = r.transfers.get(command);
      assert.ok(t, `${command} was replayed`);
      return t;
    };
    const push = outcome('dm push origin');
    assert.equal(push.Status, 'finished', push.Message);
    const originIds = async (ns: string, name: string) =>
      (await origin.bob.call('Commits', { Namespace: ns, Name: name, Branch: '' })).map((c) => c.Id);
    assert.deepEqual(await originIds('bob', 'foo'), await commitIds(receiver, 'foo'), 'master arrived whole');
    assert.equal(await origin.bob.call('Lookup', { Namespace: 'bob', Name: 'foo', Branch: '' }), r.fooId);
    const rename = outcome('dm push origin foo b1 --remote-name bob/foo2');
    assert.equal(rename.Status, 'error');
    assert.match(rename.Message, /bob\/foo2 would be a second copy of bob\/foo/);
    const pull = outcome('dm pull origin foo');
    assert.equal(pull.Status, 'finished', pull.Message);
    const clone = outcome('dm clone origin alice/apples --local-name apples');
    assert.equal(clone.Status, 'finished', clone.Message);
    assert.equal(await lookup(receiver, 'apples'), origin.applesId);
    assert.deepEqual(await commitIds(receiver, 'apples'), await originIds('alice', 'apples'));
    const path = await receiver.admin.call('Procure', { Namespace: 'admin', Name: 'apples', Subdot: '' });
    assert.equal(await readFile(join(path, 'apple.txt'), 'utf8'), 'red');
  }

  test('against node 1, the master of what it creates', async () => {
    const [n1] = cluster.nodes as [DotmeshNode];
    const origin = await startOrigin(cluster.spares[0]!);
    const r = await replay(n1, origin);
    await checkOutcome(n1, origin, r, n1);
    // The next replay makes these names again.
    for (const name of ['foo', 'apples']) await n1.admin.call('Delete', { Namespace: 'admin', Name: name });
  });

  test('against node 2, a non-master: every dot it creates is moved to node 1, every branch call passed on', async () => {
    const [n1, n2] = cluster.nodes as [DotmeshNode, DotmeshNode];
    const origin = await startOrigin(cluster.spares[1]!);
    const r = await replay(n2, origin, n1);
    await checkOutcome(n2, origin, r, n1);
  });
});
