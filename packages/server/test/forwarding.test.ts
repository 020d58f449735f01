import assert from 'node:assert/strict';
import { request } from 'node:https';
import { describe, test } from 'node:test';
import type { NodeTls } from '../src/cluster/node-transport.ts';
import { CALLER_HEADER, encodeCaller, HOPS_HEADER, NODE_RPC_PATH } from '../src/cluster/router.ts';
import { NODE_IDS, ownVolumes, useInProcessCluster } from './cluster-fixture.ts';
import { rejectsCode } from './in-process.ts';

/**
 * Any node answers every call (issue: one node among several): reads of cluster-wide facts
 * here, calls on a branch at its master node, which gets the authenticated caller and answers
 * with its own result or error (code, hint and data unchanged). The node endpoint refuses what
 * did not come from a node of this cluster.
 */
const ADMIN = { id: '00000000-0000-0000-0000-000000000000', name: 'admin', authMethod: 'apikey' as const };

/** POSTs to a node endpoint with the given client certificate; resolves status and body. */
function nodePost(
  port: number,
  tls: Partial<NodeTls> & { ca: Buffer },
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: NODE_RPC_PATH,
        method: 'POST',
        ca: tls.ca,
        ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
        checkServerIdentity: () => undefined,
        headers: { 'Content-Type': 'application/json', ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('one node among several: routing at the RPC boundary', () => {
  const fixture = useInProcessCluster(2);
  const [a, b] = [() => fixture.node(0), () => fixture.node(1)];
  const c = { tlsFor: (id: string) => fixture.cluster().tlsFor(id) };

  test('a dot made on one node is seen, named and changed through the other', async () => {
    await a().admin.call('Create', { Namespace: 'admin', Name: 'apples' });
    const id = await b().admin.call('Lookup', { Namespace: 'admin', Name: 'apples', Branch: '' });
    assert.equal(id, await a().admin.call('Lookup', { Namespace: 'admin', Name: 'apples', Branch: '' }));
    const list = await b().admin.call('List', null);
    assert.equal(list.admin?.apples?.Master, NODE_IDS[0], 'List names the master node');
    // A commit sent to b runs on a (the master) and is there, listed through either node.
    const commitId = await b().admin.call('Commit', {
      Namespace: 'admin',
      Name: 'apples',
      Branch: '',
      Message: 'through b',
      Metadata: { '#commit-id': 'via-b' },
    });
    assert.equal(commitId, 'via-b');
    assert.ok(
      (await a().driver.listCommits(id)).some((x) => x.id === 'via-b'),
      'the commit is in a’s pool',
    );
    assert.deepEqual(await ownVolumes(b().driver), [], 'b holds nothing of its own (replication gives it replicas)');
    const viaB = await b().admin.call('Commits', { Namespace: 'admin', Name: 'apples', Branch: '' });
    assert.deepEqual(viaB, await a().admin.call('Commits', { Namespace: 'admin', Name: 'apples', Branch: '' }));
    assert.equal(viaB.at(-1)?.Metadata.author, 'admin', 'the master ran it as the authenticated caller');
    const servers = (await b().admin.call('AllDotsAndBranches', null)).Servers.map((s) => s.Id).sort();
    assert.deepEqual(servers, [...NODE_IDS.slice(0, 2)]);
  });

  test('the master’s error comes back through the other node with its code, hint and data', async () => {
    await rejectsCode(
      b().admin.call('Rollback', { Namespace: 'admin', Name: 'apples', Branch: '', SnapshotId: 'nope' }),
      'COMMIT_NOT_FOUND',
      /No commit nope in the history of branch master of admin\/apples/,
    );
    await rejectsCode(
      b().admin.call('Commit', {
        Namespace: 'admin',
        Name: 'apples',
        Branch: '',
        Message: 'x',
        Metadata: { '#commit-id': 'via-b' },
      }),
      'COMMIT_EXISTS',
    );
  });

  test('a user’s rights travel with the forwarded call, never their key', async () => {
    await a().admin.call('RegisterNewUser', { Name: 'bob', Email: 'bob@example.com', Password: 'bobs-password' });
    const bob = b().client('bob', 'bobs-password');
    await rejectsCode(
      bob.call('Commit', { Namespace: 'admin', Name: 'apples', Branch: '', Message: 'not mine', Metadata: {} }),
      'DOT_NOT_FOUND',
    );
  });

  test('a delete sent to the other node runs on the master; the name is free on every node at once', async () => {
    await a().admin.call('Create', { Namespace: 'admin', Name: 'pears' });
    const id = await a().admin.call('Lookup', { Namespace: 'admin', Name: 'pears', Branch: '' });
    assert.equal(await b().admin.call('Delete', { Namespace: 'admin', Name: 'pears' }), true);
    assert.equal(await a().admin.call('Exists', { Namespace: 'admin', Name: 'pears', Branch: '' }), '');
    assert.ok(!(await a().driver.listVolumes()).some((v) => v.id === id), 'the master destroyed its copy');
    await b().admin.call('Create', { Namespace: 'admin', Name: 'pears' });
    const again = await a().admin.call('List', null);
    assert.equal(again.admin?.pears?.Master, NODE_IDS[1], 'made again on b, b masters it');
    assert.notEqual(again.admin?.pears?.Id, id);
  });

  test('the node endpoint refuses clients without a certificate of this cluster, unknown nodes and unknown callers', async () => {
    const port = b().server.clusterPort!;
    const body = JSON.stringify({ jsonrpc: '2.0', method: 'DotmeshRPC.List', params: {}, id: 1 });
    const headers = { [CALLER_HEADER]: encodeCaller(ADMIN), [HOPS_HEADER]: '1' };
    const good = await c.tlsFor(NODE_IDS[0]);
    // No client certificate: 403 (only the join routes serve such a caller).
    const none = await nodePost(port, { ca: good.ca }, headers, body);
    assert.equal(none.status, 403);
    assert.match(none.text, /unknown node \(no certificate of this cluster\)/);
    // A certificate of this CA for a node that is not live in the cluster.
    const stranger = await c.tlsFor('dddddddddddd0004');
    const unknown = await nodePost(port, stranger, headers, body);
    assert.equal(unknown.status, 403);
    assert.match(unknown.text, /unknown node dddddddddddd0004/);
    // A live node claiming a user that does not exist.
    const ghost = encodeCaller({ id: '11111111-1111-4111-8111-111111111111', name: 'ghost', authMethod: 'apikey' });
    const forged = await nodePost(port, good, { [CALLER_HEADER]: ghost, [HOPS_HEADER]: '1' }, body);
    assert.equal(forged.status, 403);
    // A live node with a real caller: answered.
    const ok = await nodePost(port, good, headers, body);
    assert.equal(ok.status, 200);
    assert.ok(JSON.parse(ok.text).result.admin.apples);
  });

  test('a forged caller header on the public API changes nothing: Basic auth decides', async () => {
    const res = await fetch(b().url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: `Basic ${Buffer.from('bob:bobs-password').toString('base64')}`,
        [CALLER_HEADER]: encodeCaller(ADMIN),
      },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'DotmeshRPC.List', params: {}, id: 2 }),
    });
    const reply = (await res.json()) as { result: Record<string, unknown> };
    assert.deepEqual(reply.result, {}, 'bob still sees none of admin’s dots');
  });
});
