import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRpcRequest, RPC_INVALID_REQUEST, RPC_PARSE_ERROR, rpcErrorBody, rpcRequestBody, rpcResultBody } from './codec.ts';

describe('parseRpcRequest', () => {
  it('keeps 63-bit ids digit for digit', () => {
    for (const id of ['5577006791947779410', '8674665223082153551', '9223372036854775807']) {
      const body = `{"jsonrpc":"2.0","method":"DotmeshRPC.Ping","params":{},"id":${id}}`;
      const req = parseRpcRequest(body);
      assert.equal(req.ok, true);
      assert.equal(req.idText, id);
      assert.equal(rpcResultBody(req.idText, true), `{"jsonrpc":"2.0","result":true,"id":${id}}`);
    }
  });

  it('takes the top-level id, not one inside params', () => {
    const req = parseRpcRequest('{"jsonrpc":"2.0","method":"M","params":{"id":1},"id":8674665223082153551}');
    assert.equal(req.idText, '8674665223082153551');
    assert.deepEqual(req.ok && req.params, { id: 1 });
  });

  it('echoes string ids raw, escapes included', () => {
    const req = parseRpcRequest('{"jsonrpc":"2.0","method":"M","id":"a\\u0041"}');
    assert.equal(req.idText, '"a\\u0041"');
  });

  it('returns bare-string, null and absent params as sent', () => {
    const s = parseRpcRequest('{"jsonrpc":"2.0","method":"DotmeshRPC.Get","params":"286e4f1b","id":1}');
    assert.equal(s.ok && s.params, '286e4f1b');
    const n = parseRpcRequest('{"jsonrpc":"2.0","method":"DotmeshRPC.List","params":null,"id":1}');
    assert.equal(n.ok && n.params, null);
    const a = parseRpcRequest('{"jsonrpc":"2.0","method":"DotmeshRPC.Ping","id":1}');
    assert.equal(a.ok && a.params, undefined);
  });

  it('treats a missing or null id as a notification', () => {
    assert.equal(parseRpcRequest('{"jsonrpc":"2.0","method":"M"}').idText, null);
    const r = parseRpcRequest('{"jsonrpc":"2.0","method":"M","id":null}');
    assert.equal(r.ok, true);
    assert.equal(r.idText, null);
  });

  it('rejects invalid JSON with -32700', () => {
    const r = parseRpcRequest('{"jsonrpc":');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, RPC_PARSE_ERROR);
  });

  it('rejects a wrong jsonrpc version with -32600, keeping the id', () => {
    for (const v of ['"1.0"', '2.0', 'null']) {
      const r = parseRpcRequest(`{"jsonrpc":${v},"method":"M","id":7}`);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.code, RPC_INVALID_REQUEST);
      assert.equal(!r.ok && r.message, 'jsonrpc must be 2.0');
      assert.equal(r.idText, '7');
    }
  });

  it('rejects non-string methods, batches and object ids with -32600', () => {
    for (const body of [
      '{"jsonrpc":"2.0","method":5,"id":1}',
      '[{"jsonrpc":"2.0","method":"M","id":1}]',
      '"x"',
      '{"jsonrpc":"2.0","method":"M","id":{}}',
    ]) {
      const r = parseRpcRequest(body);
      assert.equal(r.ok, false, body);
      assert.equal(!r.ok && r.code, RPC_INVALID_REQUEST, body);
    }
  });

  it('keeps __proto__ as plain data', () => {
    const r = parseRpcRequest('{"jsonrpc":"2.0","method":"M","params":{"__proto__":{"polluted":1}},"id":1}');
    assert.equal(r.ok, true);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(r.ok && r.params), Object.prototype);
  });
});

describe('response bodies', () => {
  it('results never carry an error key and are never null', () => {
    const body = rpcResultBody('1', '');
    assert.equal(body, '{"jsonrpc":"2.0","result":"","id":1}');
    assert.equal('error' in JSON.parse(body), false);
    assert.equal(rpcResultBody('2', false), '{"jsonrpc":"2.0","result":false,"id":2}');
    assert.throws(() => rpcResultBody('1', null), /must not be null/);
    assert.throws(() => rpcResultBody('1', undefined), /must not be null/);
  });

  it('errors have the original shape, data null by default, and no result key', () => {
    const body = rpcErrorBody('5577006791947779410', "No such filesystem named 'admin/x'");
    assert.equal(
      body,
      '{"jsonrpc":"2.0","error":{"code":-32000,"message":"No such filesystem named \'admin/x\'","data":null},"id":5577006791947779410}',
    );
    const withData = JSON.parse(rpcErrorBody('"a"', 'm', { code: 'DOT_NOT_FOUND', hint: 'h' }));
    assert.deepEqual(withData, {
      jsonrpc: '2.0',
      error: { code: -32000, message: 'm', data: { code: 'DOT_NOT_FOUND', hint: 'h' } },
      id: 'a',
    });
    assert.equal(JSON.parse(rpcErrorBody(null, 'bad', null, RPC_PARSE_ERROR)).error.code, -32700);
  });

  it('refuses an id text that is not a JSON number or string', () => {
    assert.throws(() => rpcResultBody('1,"x":2', true), /idText/);
  });

  it('writes requests like the original client', () => {
    assert.equal(
      rpcRequestBody('5577006791947779410', 'DotmeshRPC.List', null),
      '{"jsonrpc":"2.0","method":"DotmeshRPC.List","params":null,"id":5577006791947779410}',
    );
    assert.equal(rpcRequestBody('1', 'DotmeshRPC.Ping', undefined), '{"jsonrpc":"2.0","method":"DotmeshRPC.Ping","id":1}');
  });
});
