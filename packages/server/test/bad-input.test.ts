import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { METHODS } from '@dotmesh/rpc';
import { type InProcessServer, postRaw as post, startInProcess } from './in-process.ts';

/**
 * R4: every RPC method fed wrong types, missing fields, huge values and hostile names gets a
 * clear error (never an internal one), and the server keeps serving.
 */
const HOSTILE_STRINGS = [
  '../x',
  '/',
  '.',
  '..',
  'a/b',
  'a\u0000b',
  'x'.repeat(10_000),
  '',
  ' ',
  '😀',
  'HEAD^',
  '$(reboot)',
  '-rf',
];
const FIELDS = [
  'Namespace',
  'Name',
  'Branch',
  'SourceBranch',
  'NewBranchName',
  'SourceCommitId',
  'SnapshotId',
  'Subdot',
  'Message',
  'FlagName',
  'FlagValue',
  'NewBranchName',
  'FilesystemId',
  'CommitId',
  'Master',
  'FromCommit',
  'ToCommit',
];

function hostileParams(): unknown[] {
  const out: unknown[] = [
    undefined,
    null,
    42,
    true,
    'x',
    [],
    [1, 2],
    { Namespace: 5 },
    { Metadata: 'x' },
    { Metadata: { A: 'b' } },
  ];
  for (const s of HOSTILE_STRINGS) {
    out.push(s);
    out.push(Object.fromEntries(FIELDS.map((f) => [f, s])));
    out.push({ Namespace: 'admin', Name: s, Branch: s, Message: 'm', SnapshotId: s, Subdot: s });
    out.push({ namespace: 'admin', name: 'target', branch: s, sourcebranch: s, newbranchname: s, sourcecommitid: s });
    out.push({ Namespace: 'admin', Name: 'target', Branch: '', FromCommit: s, ToCommit: s });
  }
  out.push({ Namespace: 'admin', Name: 'target', Branch: '', Message: 'x'.repeat(70_000), Metadata: {} });
  out.push({
    Namespace: 'admin',
    Name: 'target',
    Branch: '',
    Message: 'm',
    Metadata: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, 'v'])),
  });
  out.push({ Namespace: 'admin', Name: 'target', Branch: '', Message: 'm', Metadata: { '#commit-id': '../../etc' } });
  return out;
}

describe('bad input to every RPC method (R4)', () => {
  let s: InProcessServer;
  before(async () => {
    s = await startInProcess();
    await s.admin.call('Create', { Namespace: 'admin', Name: 'target' });
  });
  after(async () => s.close());

  for (const method of Object.keys(METHODS)) {
    test(`DotmeshRPC.${method}`, async () => {
      for (const params of hostileParams()) {
        const body = JSON.stringify({ jsonrpc: '2.0', method: `DotmeshRPC.${method}`, params, id: 7 });
        const reply = await post(s.url, `admin:${s.apiKey}`, body);
        assert.equal(reply.status, 200);
        const json = JSON.parse(reply.text) as { result?: unknown; error?: { message: string; data?: { code?: string } } };
        assert.ok('result' in json !== 'error' in json, 'exactly one of result and error');
        if (json.error) {
          assert.notEqual(
            json.error.data?.code,
            'INTERNAL',
            `${method} ${JSON.stringify(params)?.slice(0, 120)} → internal error: ${json.error.message}`,
          );
          assert.ok(json.error.message.length > 0 && json.error.message.length < 2000, 'a short, clear message');
        }
      }
      assert.equal(await s.admin.call('Ping', null), true, 'the server keeps serving');
    });
  }

  test('framing errors: bad JSON, wrong version, batch, wrong content type, no auth, GET', async () => {
    const auth = `admin:${s.apiKey}`;
    const bad = await post(s.url, auth, '{"jsonrpc":"2.0",');
    assert.match(bad.text, /"code":-32700/);
    assert.match((await post(s.url, auth, '{"jsonrpc":"1.0","method":"DotmeshRPC.Ping","id":1}')).text, /"code":-32600/);
    assert.match((await post(s.url, auth, '[]')).text, /"code":-32600/);
    assert.equal((await post(s.url, auth, '{}', 'text/plain')).status, 415);
    assert.equal((await post(s.url, 'admin:wrong', '{}')).status, 401);
    const unknown = await post(s.url, auth, '{"jsonrpc":"2.0","method":"DotmeshRPC.Nope","params":{},"id":3}');
    assert.match(unknown.text, /can't find method/);
    const get = await fetch(s.url);
    assert.equal(get.status, 405);
  });

  test('a method error keeps the original shape and carries its code, hint and data in `data`', async () => {
    const auth = `admin:${s.apiKey}`;
    const missing = await post(s.url, auth, '{"jsonrpc":"2.0","method":"DotmeshRPC.GetTransfer","params":"nope","id":9}');
    assert.equal(missing.status, 200);
    assert.equal(
      missing.text,
      '{"jsonrpc":"2.0","error":{"code":-32000,"message":"No such intercluster transfer nope",' +
        '"data":{"code":"DOT_NOT_FOUND","hint":null,"data":{"transferId":"nope"}}},"id":9}',
    );
    const dup = await post(
      s.url,
      auth,
      '{"jsonrpc":"2.0","method":"DotmeshRPC.Create","params":{"Namespace":"admin","Name":"target"},"id":10}',
    );
    const json = JSON.parse(dup.text) as { error: { code: number; message: string; data: Record<string, unknown> } };
    assert.equal(json.error.code, -32000);
    assert.deepEqual(Object.keys(json.error.data), ['code', 'hint', 'data']);
    assert.equal(json.error.data.code, 'DOT_EXISTS');
  });
});
