import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { crc32 } from 'node:zlib';
import type { MemoryDriver } from '@dotmesh/storage';
import { type InProcessServer, startInProcess } from './in-process.ts';

/**
 * Hostile peers and users against the server-to-server endpoints (/transfer/v1/*): wrong keys,
 * other users' namespaces and dots, forged descriptions of where a commit belongs, malformed
 * headers and frames. Each is refused with a clear error and leaves nothing behind.
 */
describe('transfer endpoints under hostile input (R4, R5)', () => {
  let s: InProcessServer;
  let base: string;
  let aliceKey: string;
  let bobKey: string;
  let applesId: string;
  let applesHead: string;

  const basic = (user: string, key: string) => `Basic ${Buffer.from(`${user}:${key}`).toString('base64')}`;
  const call = async (
    op: string,
    auth: string,
    init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
  ) => {
    const res = await fetch(`${base}/transfer/v1/${op}`, {
      method: init.method ?? 'POST',
      headers: { authorization: auth, ...(init.headers ?? {}) },
      ...(init.body === undefined
        ? {}
        : {
            body:
              typeof init.body === 'string' || init.body instanceof Uint8Array
                ? (init.body as string)
                : JSON.stringify(init.body),
          }),
    });
    const text = await res.text();
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json, error: json?.error as { code: string; message: string } | undefined };
  };

  /** A framed stream (transfer protocol v1, frames.ts) around `data`; `damage` spoils its checksums. */
  const framed = (data: Buffer, damage = false) => {
    const crc = crc32(data) ^ (damage ? 1 : 0);
    const h = Buffer.alloc(9);
    h.writeUInt8(1, 0);
    h.writeUInt32BE(data.length + 4, 1);
    h.writeUInt32BE(crc >>> 0, 5);
    const e = Buffer.alloc(17);
    e.writeUInt8(2, 0);
    e.writeUInt32BE(12, 1);
    e.writeBigUInt64BE(BigInt(data.length), 5);
    e.writeUInt32BE(1, 13); // one data frame
    return Buffer.concat([h, data, e]);
  };
  const commitHeader = (d: unknown) => Buffer.from(JSON.stringify(d)).toString('base64url');

  before(async () => {
    s = await startInProcess();
    base = s.url.replace(/\/rpc$/, '');
    for (const name of ['alice', 'bob']) {
      await s.admin.call('RegisterNewUser', { Name: name, Email: `${name}@example.com`, Password: `${name}-password` });
    }
    aliceKey = (await s.client('alice', 'alice-password').call('GetApiKey', null)).ApiKey;
    bobKey = (await s.client('bob', 'bob-password').call('GetApiKey', null)).ApiKey;
    const alice = s.client('alice', aliceKey);
    await alice.call('Create', { Namespace: 'alice', Name: 'apples' });
    applesId = await alice.call('Lookup', { Namespace: 'alice', Name: 'apples', Branch: '' });
    await (s.driver as MemoryDriver).writeFile(applesId, '__default__/secret', 'alice only');
    applesHead = await alice.call('Commit', { Namespace: 'alice', Name: 'apples', Branch: '', Message: 'm', Metadata: {} });
  });
  after(async () => s?.close());

  test('no credentials or a wrong key: 401 on every endpoint', async () => {
    for (const [op, method] of [
      ['hello', 'GET'],
      ['state', 'POST'],
      ['export', 'GET'],
      ['receive', 'POST'],
      ['stash', 'POST'],
    ] as const) {
      assert.equal((await call(op, '', { method })).status, 401, op);
      assert.equal((await call(op, basic('alice', 'wrong'), { method })).status, 401, op);
    }
  });

  test('another user’s dot is invisible: state is null, export and stash say not found', async () => {
    const bob = basic('bob', bobKey);
    const state = await call('state', bob, { body: { namespace: 'alice', name: 'apples' } });
    assert.equal(state.status, 200);
    assert.deepEqual(state.json, { dot: null });
    const exp = await call(`export?fsId=${applesId}&commitId=${applesHead}`, bob, { method: 'GET' });
    assert.equal(exp.status, 404);
    assert.equal(exp.error?.code, 'DOT_NOT_FOUND');
    const stash = await call('stash', bob, { body: { fsId: applesId, common: null } });
    assert.equal(stash.error?.code, 'DOT_NOT_FOUND');
    const dirty = await call('commit-dirty', bob, { body: { fsId: applesId } });
    assert.equal(dirty.error?.code, 'DOT_NOT_FOUND');
  });

  test('forged receive descriptions: another user’s dot or namespace, mismatched ids, bad fields', async () => {
    const bob = basic('bob', bobKey);
    const newId = '11111111-2222-4333-8444-555555555555';
    const cases: Array<[string, unknown, string]> = [
      [
        'into alice’s existing dot',
        {
          volume: { dot: { id: applesId, namespace: 'alice', name: 'apples' }, fsId: applesId, branch: 'master', origin: null },
          commitId: 'c1',
          parent: null,
          targetFsId: applesId,
        },
        'PERMISSION_DENIED',
      ],
      [
        'a new dot in alice’s namespace',
        {
          volume: { dot: { id: newId, namespace: 'alice', name: 'fresh' }, fsId: newId, branch: 'master', origin: null },
          commitId: 'c1',
          parent: null,
          targetFsId: newId,
        },
        'PERMISSION_DENIED',
      ],
      [
        'alice’s dot id under bob’s name',
        {
          volume: { dot: { id: applesId, namespace: 'bob', name: 'apples' }, fsId: applesId, branch: 'master', origin: null },
          commitId: 'c1',
          parent: null,
          targetFsId: applesId,
        },
        'PERMISSION_DENIED',
      ],
      [
        'a master whose id is not the dot’s',
        {
          volume: { dot: { id: newId, namespace: 'bob', name: 'x' }, fsId: applesId, branch: 'master', origin: null },
          commitId: 'c1',
          parent: null,
          targetFsId: applesId,
        },
        'INVALID_ARGUMENT',
      ],
      [
        'a branch without origin',
        {
          volume: {
            dot: { id: newId, namespace: 'bob', name: 'x' },
            fsId: '21111111-2222-4333-8444-555555555555',
            branch: 'b1',
            origin: null,
          },
          commitId: 'c1',
          parent: null,
          targetFsId: newId,
        },
        'INVALID_ARGUMENT',
      ],
      [
        'a hostile commit id',
        {
          volume: { dot: { id: newId, namespace: 'bob', name: 'x' }, fsId: newId, branch: 'master', origin: null },
          commitId: '../../etc',
          parent: null,
          targetFsId: newId,
        },
        'INVALID_NAME',
      ],
      [
        'a hostile dot name',
        {
          volume: { dot: { id: newId, namespace: 'bob', name: 'a/../b' }, fsId: newId, branch: 'master', origin: null },
          commitId: 'c1',
          parent: null,
          targetFsId: newId,
        },
        'INVALID_NAME',
      ],
      ['no volume at all', { commitId: 'c1' }, 'INVALID_ARGUMENT'],
    ];
    for (const [what, desc, code] of cases) {
      const r = await call('receive', bob, {
        headers: { 'x-dotmesh-commit': commitHeader(desc), 'content-type': 'application/octet-stream' },
        body: framed(Buffer.from('not a stream')),
      });
      assert.equal(r.error?.code, code, `${what}: ${r.text}`);
    }
    for (const header of ['not base64 json!', Buffer.from('[1,2').toString('base64url'), 'x'.repeat(16_000)]) {
      const r = await call('receive', bob, { headers: { 'x-dotmesh-commit': header }, body: 'x' });
      assert.equal(r.error?.code, 'INVALID_ARGUMENT', `${header.slice(0, 20)}: ${r.status} ${r.text}`);
    }
    // larger than HTTP allows at all: refused by the HTTP layer (431) before any handler runs
    assert.equal((await call('receive', bob, { headers: { 'x-dotmesh-commit': 'x'.repeat(70_000) }, body: 'x' })).status, 431);
    assert.equal((await call('receive', bob, { body: 'x' })).error?.code, 'INVALID_ARGUMENT', 'missing header');
    // nothing was created, alice's dot is unchanged
    assert.deepEqual(Object.keys(await s.admin.call('List', null)).sort(), ['alice']);
    const commits = await s.client('alice', aliceKey).call('Commits', { Namespace: 'alice', Name: 'apples', Branch: '' });
    assert.equal(commits.at(-1)?.Id, applesHead);
  });

  test('a corrupt, truncated or garbage stream into one’s own namespace leaves no dot behind', async () => {
    const bob = basic('bob', bobKey);
    const id = '31111111-2222-4333-8444-555555555555';
    const desc = {
      volume: { dot: { id, namespace: 'bob', name: 'incoming' }, fsId: id, branch: 'master', origin: null },
      commitId: 'c1',
      parent: null,
      targetFsId: id,
    };
    const headers = { 'x-dotmesh-commit': commitHeader(desc), 'content-type': 'application/octet-stream' };
    const garbage = Buffer.from('definitely not a commit stream');
    const bodies: Array<[string, Buffer, string]> = [
      ['wrong checksum', framed(garbage, true), 'TRANSFER_CORRUPT'],
      ['no end frame', framed(garbage).subarray(0, 20), 'TRANSFER_CORRUPT'],
      ['unknown frame type', Buffer.from([9, 0, 0, 0, 1, 0]), 'TRANSFER_CORRUPT'],
      ['absurd frame length', Buffer.from([1, 0xff, 0xff, 0xff, 0xff]), 'TRANSFER_CORRUPT'],
      ['garbage with a good checksum', framed(garbage), 'INVALID_ARGUMENT'],
    ];
    for (const [what, body, code] of bodies) {
      const r = await call('receive', bob, { headers, body });
      assert.ok(r.error, `${what}: ${r.text}`);
      assert.ok(
        [code, 'INVALID_ARGUMENT', 'TRANSFER_CORRUPT'].includes(r.error.code),
        `${what}: ${r.error.code} ${r.error.message}`,
      );
      assert.equal(r.error.code, code, `${what}: ${r.error.message}`);
    }
    assert.equal(await s.client('bob', bobKey).call('Exists', { Namespace: 'bob', Name: 'incoming', Branch: '' }), '');
    assert.ok(!(await s.driver.listVolumes()).some((v) => v.id === id), 'no half-created volume');
  });

  test('RegisterFilesystem and RegisterTransfer check the namespace like a push', async () => {
    const bob = s.client('bob', bobKey);
    await assert.rejects(
      bob.call('RegisterFilesystem', {
        Namespace: 'alice',
        TopLevelFilesystemName: 'stolen',
        CloneName: '',
        FilesystemId: '41111111-2222-4333-8444-555555555555',
        PathToTopLevelFilesystem: null,
        BecomeMasterIfNotExists: true,
      } as never),
      /User is not an administrator for namespace alice, so cannot create volumes/,
    );
    assert.equal(
      await bob.call('RegisterFilesystem', {
        Namespace: 'bob',
        TopLevelFilesystemName: 'mine',
        CloneName: '',
        FilesystemId: '41111111-2222-4333-8444-555555555555',
        PathToTopLevelFilesystem: null,
        BecomeMasterIfNotExists: true,
      } as never),
      true,
    );
    await assert.rejects(bob.call('StashAfter', { FilesystemId: applesId, SnapshotId: applesHead }), /No such filesystem id/);
    await assert.rejects(bob.call('GetTransfer', 'no-such-transfer'), /No such intercluster transfer no-such-transfer/);
  });

  /**
   * A raw request upgraded to the commit stream protocol (stream-protocol.ts): `early` is sent
   * with the request head, `stream` once the server sent its go byte. Returns the status and,
   * after a 101, the answer (keep-alives and the go byte left out) and whether a go came.
   */
  const upgradeRaw = (o: {
    method: string;
    op: string;
    auth: string;
    headers?: Record<string, string>;
    token?: string;
    early?: Buffer;
    stream?: Buffer;
    /** Close the sending side after the stream (a peer that went away). */
    cut?: boolean;
  }): Promise<{ status: number; answer: string; go: boolean; json: { error?: { code: string; message: string } } }> =>
    new Promise((resolve, reject) => {
      const socket = connect(Number(new URL(base).port), '127.0.0.1');
      const head = [
        `${o.method} /transfer/v1/${o.op} HTTP/1.1`,
        'host: 127.0.0.1',
        'connection: Upgrade',
        `upgrade: ${o.token ?? 'dotmesh-commit-stream/1'}`,
        ...(o.auth ? [`authorization: ${o.auth}`] : []),
        ...Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ].join('\r\n');
      socket.write(Buffer.concat([Buffer.from(head), o.early ?? Buffer.alloc(0)]));
      let got = Buffer.alloc(0);
      let go = false;
      socket.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        const end = got.indexOf('\r\n\r\n');
        if (!go && end >= 0 && got.subarray(0, 12).toString().endsWith('101') && got.subarray(end + 4).includes(10)) {
          go = true;
          if (o.stream) socket.write(o.stream);
          if (o.cut) socket.end();
        }
      });
      socket.setTimeout(20_000, () => socket.destroy(new Error('no answer')));
      socket.on('error', reject);
      socket.on('end', () => {
        socket.end();
        const text = got.toString('utf8');
        const end = text.indexOf('\r\n\r\n');
        const status = Number(text.slice(9, 12));
        const answer = text.slice(end + 4).replace(/^[ \n]+/, '');
        let json = {};
        try {
          json = JSON.parse(answer);
        } catch {}
        resolve({ status, answer, go, json });
      });
    });

  test('upgraded commit streams: the same refusals, before or after the 101, and nothing left behind', async () => {
    const bob = basic('bob', bobKey);
    const id = '51111111-2222-4333-8444-555555555555';
    const mine = {
      volume: { dot: { id, namespace: 'bob', name: 'streamed' }, fsId: id, branch: 'master', origin: null },
      commitId: 'c1',
      parent: null,
      targetFsId: id,
    };
    const into = (desc: unknown) => ({ 'x-dotmesh-commit': commitHeader(desc) });
    // before the 101: credentials, the upgrade token, bytes sent before the go, unknown commits
    assert.equal((await upgradeRaw({ method: 'POST', op: 'receive', auth: '', headers: into(mine) })).status, 401);
    assert.equal(
      (await upgradeRaw({ method: 'POST', op: 'receive', auth: basic('bob', 'wrong'), headers: into(mine) })).status,
      401,
    );
    const token = await upgradeRaw({ method: 'POST', op: 'receive', auth: bob, headers: into(mine), token: 'websocket' });
    assert.equal(token.json.error?.code, 'UNSUPPORTED', token.answer);
    const early = await upgradeRaw({
      method: 'POST',
      op: 'receive',
      auth: bob,
      headers: into(mine),
      early: framed(Buffer.from('x')),
    });
    assert.equal(early.json.error?.code, 'INVALID_ARGUMENT', early.answer);
    assert.match(early.json.error?.message ?? '', /after the go byte/);
    const bad = await upgradeRaw({
      method: 'POST',
      op: 'receive',
      auth: bob,
      headers: { 'x-dotmesh-commit': 'not base64 json!' },
    });
    assert.equal(bad.json.error?.code, 'INVALID_ARGUMENT', bad.answer);
    const theirs = await upgradeRaw({ method: 'GET', op: `export?fsId=${applesId}&commitId=${applesHead}`, auth: bob });
    assert.equal(theirs.status, 404);
    assert.equal(theirs.json.error?.code, 'DOT_NOT_FOUND');
    // after the 101: a forged description is refused without asking for the stream
    const forged = await upgradeRaw({
      method: 'POST',
      op: 'receive',
      auth: bob,
      headers: into({
        ...mine,
        volume: { ...mine.volume, dot: { id: applesId, namespace: 'alice', name: 'apples' }, fsId: applesId },
        targetFsId: applesId,
      }),
      stream: framed(Buffer.from('never sent')),
    });
    assert.equal(forged.status, 101);
    assert.equal(forged.go, false, 'no go byte for a refused commit');
    assert.equal(forged.json.error?.code, 'PERMISSION_DENIED', forged.answer);
    // damaged and garbage streams
    for (const [body, code, cut] of [
      [framed(Buffer.from('garbage'), true), 'TRANSFER_CORRUPT', false],
      [framed(Buffer.from('garbage')).subarray(0, 15), 'TRANSFER_CORRUPT', true],
      [framed(Buffer.from('definitely not a commit stream')), 'INVALID_ARGUMENT', false],
    ] as const) {
      const r = await upgradeRaw({ method: 'POST', op: 'receive', auth: bob, headers: into(mine), stream: body, cut });
      assert.equal(r.status, 101);
      assert.equal(r.go, true);
      assert.equal(r.json.error?.code, code, r.answer);
    }
    assert.equal(await s.client('bob', bobKey).call('Exists', { Namespace: 'bob', Name: 'streamed', Branch: '' }), '');
    assert.ok(!(await s.driver.listVolumes()).some((v) => v.id === id), 'no half-created volume');
    const commits = await s.client('alice', aliceKey).call('Commits', { Namespace: 'alice', Name: 'apples', Branch: '' });
    assert.equal(commits.at(-1)?.Id, applesHead);
  });
});
