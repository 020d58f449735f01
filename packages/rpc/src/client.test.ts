import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DotmeshError } from '@dotmesh/core';
import { DotmeshClient, randomRpcId, rpcUrl, UNAUTHENTICATED_MESSAGE } from './client.ts';
import { parseRpcRequest, rpcErrorBody, rpcResultBody } from './codec.ts';
import { rpcErrorData } from './rpc-error.ts';

interface Seen {
  auth: string | undefined;
  contentType: string | undefined;
  body: string;
}

describe('DotmeshClient', () => {
  let server: Server;
  let url = '';
  const seen: Seen[] = [];
  let reply: (req: ReturnType<typeof parseRpcRequest>, res: ServerResponse) => void = () => {};

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () => {
        seen.push({ auth: req.headers.authorization, contentType: req.headers['content-type'], body });
        reply(parseRpcRequest(body), res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rpc`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('sends the original request shape with Basic auth and returns the result', async () => {
    reply = (req, res) => res.end(rpcResultBody(req.idText, true));
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'sekrit', newId: () => '5577006791947779410' });
    assert.equal(await client.call('Ping', {}), true);
    const last = seen.at(-1)!;
    assert.equal(last.body, '{"jsonrpc":"2.0","method":"DotmeshRPC.Ping","params":{},"id":5577006791947779410}');
    assert.equal(last.auth, `Basic ${Buffer.from('admin:sekrit').toString('base64')}`);
    assert.equal(last.contentType, 'application/json');
  });

  it('keeps the key order of params on the wire', async () => {
    reply = (req, res) => res.end(rpcResultBody(req.idText, []));
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'k', newId: () => '1' });
    await client.call('Commits', { Branch: '', Name: 'foo', Namespace: 'admin' });
    assert.equal(
      seen.at(-1)!.body,
      '{"jsonrpc":"2.0","method":"DotmeshRPC.Commits","params":{"Branch":"","Name":"foo","Namespace":"admin"},"id":1}',
    );
  });

  it('maps HTTP 401 to UNAUTHENTICATED with the original text', async () => {
    reply = (_req, res) => {
      res.statusCode = 401;
      res.end('Unauthorized.\n');
    };
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'wrong' });
    await assert.rejects(client.call('Ping', {}), (e: unknown) => {
      assert.ok(e instanceof DotmeshError);
      assert.equal(e.code, 'UNAUTHENTICATED');
      assert.equal(e.message, UNAUTHENTICATED_MESSAGE);
      return true;
    });
  });

  it('maps JSON-RPC errors, keeping the message and our data.code', async () => {
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'k' });
    reply = (req, res) =>
      res.end(rpcErrorBody(req.idText, "No such filesystem named 'admin/x'", { code: 'DOT_NOT_FOUND', hint: 'h' }));
    await assert.rejects(client.call('Lookup', { Namespace: 'admin', Name: 'x', Branch: '' }), (e: unknown) => {
      assert.ok(e instanceof DotmeshError);
      assert.equal(e.code, 'DOT_NOT_FOUND');
      assert.equal(e.message, "No such filesystem named 'admin/x'");
      assert.equal(e.hint, 'h');
      return true;
    });
    reply = (req, res) => res.end(rpcErrorBody(req.idText, 'rpc: can\'t find method "DotmeshRPC.X"'));
    await assert.rejects(client.callRaw('DotmeshRPC.X', {}), {
      code: 'INTERNAL',
      message: 'rpc: can\'t find method "DotmeshRPC.X"',
    });
  });

  it('rebuilds the server’s error with its code, hint and data', async () => {
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'k' });
    const data = { common: 'c0', senderExtra: ['s1'], receiverExtra: ['r1', 'r2'] };
    reply = (req, res) =>
      res.end(
        rpcErrorBody(req.idText, 'they diverged', rpcErrorData({ code: 'DIVERGED', message: 'ignored', hint: 'stash', data })),
      );
    await assert.rejects(client.call('Ping', null), (e: unknown) => {
      assert.ok(e instanceof DotmeshError);
      assert.deepEqual([e.code, e.message, e.hint, e.data], ['DIVERGED', 'they diverged', 'stash', data]);
      return true;
    });
  });

  it('degrades a code it does not know (a newer server) to INTERNAL, keeping the code in the data', async () => {
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'k' });
    reply = (req, res) =>
      res.end(rpcErrorBody(req.idText, 'over quota', { code: 'QUOTA_EXCEEDED', hint: 'ask for more', data: { limit: 3 } }));
    await assert.rejects(client.call('Ping', null), (e: unknown) => {
      assert.ok(e instanceof DotmeshError);
      assert.deepEqual(
        [e.code, e.message, e.hint, e.data],
        ['INTERNAL', 'over quota', 'ask for more', { limit: 3, unknownCode: 'QUOTA_EXCEEDED' }],
      );
      return true;
    });
  });

  it('treats a null result as an error', async () => {
    reply = (req, res) => res.end(`{"jsonrpc":"2.0","result":null,"id":${req.idText}}`);
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'k' });
    await assert.rejects(client.call('List', null), { code: 'INTERNAL', message: 'result is null' });
  });

  it('prints raw request and response lines when verbose', async () => {
    reply = (req, res) => res.end(rpcResultBody(req.idText, {}));
    const lines: string[] = [];
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'k', newId: () => '42', verbose: (l) => lines.push(l) });
    await client.call('ListWithContainers', null);
    assert.deepEqual(lines, [
      'send rpc request',
      '{"jsonrpc":"2.0","method":"DotmeshRPC.ListWithContainers","params":null,"id":42}',
      'got rpc response',
      '{"jsonrpc":"2.0","result":{},"id":42}',
    ]);
  });

  it('times out with UNAVAILABLE', async () => {
    reply = () => {};
    const client = new DotmeshClient({ url, user: 'admin', apiKey: 'k', timeoutMs: 100 });
    await assert.rejects(client.call('Ping', {}), { code: 'UNAVAILABLE', message: /timed out after 100 ms/ });
  });

  it('maps connection refused to UNAVAILABLE with a hint', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const deadUrl = `http://127.0.0.1:${port}/rpc`;
    const client = new DotmeshClient({ url: deadUrl, user: 'admin', apiKey: 'k' });
    await assert.rejects(client.call('Ping', {}), (e: unknown) => {
      assert.ok(e instanceof DotmeshError);
      assert.equal(e.code, 'UNAVAILABLE');
      assert.ok(e.message.startsWith(`cannot reach dotmesh-server at ${deadUrl}: `), e.message);
      assert.match(e.hint ?? '', /dm cluster init/);
      return true;
    });
  });
});

describe('helpers', () => {
  it('generates 63-bit decimal ids, spread over the range', () => {
    const ids = Array.from({ length: 1000 }, randomRpcId);
    for (const id of ids) {
      assert.match(id, /^\d+$/);
      assert.ok(BigInt(id) < 2n ** 63n);
    }
    assert.equal(new Set(ids).size, ids.length, 'no repeats');
    assert.ok(
      ids.some((id) => BigInt(id) >= 2n ** 62n),
      'the top bit of the 63 is used',
    );
    assert.ok(
      ids.some((id) => BigInt(id) % 2n === 1n),
      'the low bits are used',
    );
  });
  it('builds RPC urls', () => {
    assert.equal(rpcUrl('127.0.0.1', 32607), 'http://127.0.0.1:32607/rpc');
    assert.equal(rpcUrl('hub.example', 443), 'https://hub.example/rpc');
    assert.equal(rpcUrl('::1', 32607), 'http://[::1]:32607/rpc');
  });
});
