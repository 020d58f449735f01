import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallParamsOf, DotmeshClient, TransferPollResult } from '@dotmesh/rpc';
import { MemoryDriver } from '@dotmesh/storage';
import { type InProcessServer, startInProcess } from './in-process.ts';
import { transferRequest } from './transfer-request.ts';

/**
 * Servers of the previous protocol (commit streams as plain HTTP bodies only: no
 * `commit-stream-upgrade` in hello, no upgrade listener — `transferStreamUpgrade: false`) and
 * servers with upgraded commit streams push to and pull from each other; two of the new ones
 * use the upgrade. What goes on the wire is seen through a recording TCP relay in front of the
 * peer.
 */
describe('transfers between servers of the previous protocol and upgraded ones', () => {
  let modern: InProcessServer;
  let legacy: InProcessServer;
  let other: InProcessServer;
  const relays: Relay[] = [];

  before(async () => {
    modern = await startInProcess({ driver: new MemoryDriver({ poolId: 'aaaaaaaaaaaa0001' }), nodeId: 'aaaaaaaaaaaa0001' });
    legacy = await startInProcess({
      driver: new MemoryDriver({ poolId: 'bbbbbbbbbbbb0002' }),
      nodeId: 'bbbbbbbbbbbb0002',
      transferStreamUpgrade: false,
    });
    other = await startInProcess({ driver: new MemoryDriver({ poolId: 'cccccccccccc0003' }), nodeId: 'cccccccccccc0003' });
  });
  after(async () => {
    for (const r of relays) r.server.close();
    await modern?.close();
    await legacy?.close();
    await other?.close();
  });

  const request = (port: number, apiKey: string, direction: 'push' | 'pull', name: string) =>
    transferRequest({ port, apiKey, direction, name });

  async function transfer(initiator: DotmeshClient, req: CallParamsOf<'Transfer'>): Promise<TransferPollResult> {
    const id = await initiator.call('Transfer', req);
    for (let i = 0; i < 400; i++) {
      const r = await initiator.call('GetTransfer', id);
      if (r.Status === 'finished' || r.Status === 'error') return r;
      await sleep(25);
    }
    throw new Error('transfer did not end');
  }

  /** A dot `name` on `s` with one commit holding `file` = `text`; returns the commit id. */
  async function dotWith(s: InProcessServer, name: string, file: string, text: string): Promise<string> {
    await s.admin.call('Create', { Namespace: 'admin', Name: name });
    return commitTo(s, name, file, text);
  }
  async function commitTo(s: InProcessServer, name: string, file: string, text: string): Promise<string> {
    const fsId = await s.admin.call('Lookup', { Namespace: 'admin', Name: name, Branch: '' });
    await (s.driver as MemoryDriver).writeFile(fsId, `__default__/${file}`, text);
    return s.admin.call('Commit', { Namespace: 'admin', Name: name, Branch: '', Message: file, Metadata: {} });
  }
  const commitIds = async (s: InProcessServer, name: string) =>
    (await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: '' })).map((c) => c.Id);
  const fileOf = async (s: InProcessServer, name: string, file: string) => {
    const fsId = await s.admin.call('Lookup', { Namespace: 'admin', Name: name, Branch: '' });
    return (await (s.driver as MemoryDriver).readFile(fsId, `__default__/${file}`)).toString();
  };

  /** Push `name` from `from` to `to` through a relay, then pull a new commit back; the relay's requests. */
  async function pushThenPull(from: InProcessServer, to: InProcessServer, name: string): Promise<string[]> {
    const relay = await startRelay(to.server.port);
    relays.push(relay);
    await dotWith(from, name, 'a.txt', `${name} one`);
    const pushed = await transfer(from.admin, request(relay.port, to.apiKey, 'push', name));
    assert.equal(pushed.Status, 'finished', pushed.Message);
    assert.deepEqual(await commitIds(to, name), await commitIds(from, name));
    assert.equal(await fileOf(to, name, 'a.txt'), `${name} one`);
    await commitTo(to, name, 'b.txt', `${name} two`);
    const pulled = await transfer(from.admin, request(relay.port, to.apiKey, 'pull', name));
    assert.equal(pulled.Status, 'finished', pulled.Message);
    assert.ok(pulled.Sent > 0, `pulled ${pulled.Sent} bytes`);
    assert.deepEqual(await commitIds(from, name), await commitIds(to, name));
    assert.equal(await fileOf(from, name, 'b.txt'), `${name} two`);
    return relay.requests;
  }

  /** The commit stream requests (pushed, pulled), each of both kinds at least once. */
  const streamRequests = (requests: string[]) => {
    const pushes = requests.filter((r) => r.startsWith('POST /transfer/v1/receive'));
    const pulls = requests.filter((r) => r.startsWith('GET /transfer/v1/export'));
    assert.ok(pushes.length > 0 && pulls.length > 0, requests.join('\n---\n'));
    return [...pushes, ...pulls];
  };
  const upgraded = (r: string) => /\r\nupgrade: dotmesh-commit-stream\/1\r\n/i.test(r);

  test('hello offers the upgrade only where it is served', async () => {
    const hello = async (s: InProcessServer) =>
      (await fetch(`http://127.0.0.1:${s.server.port}/transfer/v1/hello`, {
        headers: { authorization: `Basic ${Buffer.from(`admin:${s.apiKey}`).toString('base64')}` },
      }).then((r) => r.json())) as { capabilities: string[] };
    assert.ok((await hello(modern)).capabilities.includes('commit-stream-upgrade'));
    assert.ok(!(await hello(legacy)).capabilities.includes('commit-stream-upgrade'));
  });

  test('an upgraded server pushes to and pulls from one of the previous protocol, with plain bodies', async () => {
    const requests = streamRequests(await pushThenPull(modern, legacy, 'to-legacy'));
    for (const r of requests) assert.ok(!upgraded(r), r);
  });

  test('a server of the previous protocol pushes to and pulls from an upgraded one, with plain bodies', async () => {
    const requests = streamRequests(await pushThenPull(legacy, modern, 'from-legacy'));
    for (const r of requests) assert.ok(!upgraded(r), r);
  });

  test('two upgraded servers stream commits on upgraded connections', async () => {
    const requests = streamRequests(await pushThenPull(modern, other, 'modern'));
    for (const r of requests) assert.ok(upgraded(r), r);
  });
});

interface Relay {
  readonly server: Server;
  readonly port: number;
  /** The request head of each connection relayed (up to the blank line). */
  readonly requests: string[];
}

/** A TCP relay to 127.0.0.1:`port` that records each connection's request head. */
async function startRelay(port: number): Promise<Relay> {
  const requests: string[] = [];
  const server = createServer((client: Socket) => {
    const upstream = connect(port, '127.0.0.1');
    let head = '';
    let recorded = false;
    client.on('data', (d: Buffer) => {
      if (!recorded) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end >= 0 || head.length > 64 * 1024) {
          requests.push(head.slice(0, end >= 0 ? end + 2 : head.length));
          recorded = true;
        }
      }
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, requests };
}
