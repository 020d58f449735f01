import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DotmeshClient, TransferPollResult } from '@dotmesh/rpc';
import { MemoryDriver } from '@dotmesh/storage';
import { loadTranscript } from '@dotmesh/testkit';
import { type InProcessServer, postRaw as post, startInProcess } from './in-process.ts';

/**
 * Replays every request the original dm 0.8.1 client sent in the recorded transcript
 * (fixtures/dm-0.8.1-transcript.md) against our servers, in order, and checks each reply's
 * wire shape: HTTP 200, `result` present and not null, no `error` key beside it, the id echoed
 * digit for digit. Ids the recorder made up (fs ids, commit ids, transfer ids) are mapped to the
 * real ones as they appear.
 *
 * The remote `origin` (user bob, API key "otherkey" in the transcript) is a second server here,
 * where bob is a user with a key of his own and alice owns `apples` with bob as a collaborator:
 * bob's requests go there with his real key, and each Transfer names that server's port and
 * bob's real key. Every push, pull and clone then runs for real and its outcome is checked on
 * both servers.
 */
/** The master branch id of `foo` that `dm dot show foo` printed in the transcript. */
const FOO_MASTER_ID = '286e4f1b-eed1-4e55-a849-f4159fdb2638';
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/** Polls a transfer until it ends. */
async function transferEnd(client: DotmeshClient, id: string): Promise<TransferPollResult> {
  for (let i = 0; i < 400; i++) {
    const r = await client.call('GetTransfer', id);
    if (r.Status === 'finished' || r.Status === 'error') return r;
    await sleep(25);
  }
  throw new Error(`transfer ${id} did not end`);
}

describe('replay of the original dm 0.8.1 transcript', () => {
  let s: InProcessServer;
  let origin: InProcessServer;
  let bobKey: string;
  let applesId: string;

  before(async () => {
    s = await startInProcess();
    origin = await startInProcess({ driver: new MemoryDriver({ poolId: 'bbbbbbbbbbbb0002' }) });
    const login = async (name: string) => {
      const password = `${name}-password`;
      await origin.admin.call('RegisterNewUser', { Name: name, Email: `${name}@example.com`, Password: password });
      return (await origin.client(name, password).call('GetApiKey', null)).ApiKey;
    };
    bobKey = await login('bob');
    const alice = origin.client('alice', await login('alice'));
    const apples = { Namespace: 'alice', Name: 'apples' };
    await alice.call('Create', apples);
    applesId = await alice.call('Lookup', { ...apples, Branch: '' });
    await (origin.driver as MemoryDriver).writeFile(applesId, '__default__/apple.txt', 'red');
    await alice.call('Commit', { ...apples, Branch: '', Message: 'first apple', Metadata: {} });
    await alice.call('AddCollaborator', { MasterBranchID: applesId, Collaborator: 'bob' });
  });
  after(async () => {
    await s?.close();
    await origin?.close();
  });

  test('every recorded request gets a well-formed reply, and every transfer does what it says', async () => {
    const recorded = await loadTranscript();
    assert.ok(recorded.length >= 40, `parsed ${recorded.length} requests`);
    const idMap = new Map<string, string>();
    const fakeCommits: string[] = [];
    const realCommits: string[] = [];
    const transfers = new Map<string, TransferPollResult>();
    let lastTransfer = '';
    let checked = 0;
    for (const r of recorded) {
      // Map the recorder's ids to ours: commit ids in the order `dm commit` printed them,
      // fs ids from `dm dot show` (resolved with Lookup), transfer ids from Transfer's result.
      if (r.command.startsWith('dm dot show')) {
        const master = r.printed.find((l) => l.startsWith('Master branch ID: '))?.match(UUID)?.[0];
        const b1 = r.printed.find((l) => l.trim().startsWith('b1 ('))?.match(UUID)?.[0];
        if (master) idMap.set(master, await s.admin.call('Lookup', { Namespace: 'admin', Name: 'foo', Branch: '' }));
        if (b1) idMap.set(b1, await s.admin.call('Lookup', { Namespace: 'admin', Name: 'foo', Branch: 'b1' }));
      }
      const method = (JSON.parse(r.body) as { method: string }).method;
      if (method === 'DotmeshRPC.GetTransfer') idMap.set((JSON.parse(r.body) as { params: string }).params, lastTransfer);
      let body = r.body.replace(UUID, (id) => idMap.get(id) ?? id);
      if (method === 'DotmeshRPC.Transfer') {
        body = body.replace('"Port":32607,"ApiKey":"otherkey"', `"Port":${origin.server.port},"ApiKey":"${bobKey}"`);
        assert.ok(body.includes(`"ApiKey":"${bobKey}"`), `${r.command}: the Transfer names origin`);
      }
      const idText = /"id":(\d+)/.exec(r.body)![1]!;
      const [server, auth] = r.user === 'bob' ? [origin, `bob:${bobKey}`] : [s, `admin:${s.apiKey}`];
      assert.ok(r.user === 'admin' || r.user === 'bob', `${r.command}: recorded user ${r.user}`);
      const reply = await post(server.url, auth, body);
      assert.equal(reply.status, 200, `${r.command}: HTTP status`);
      assert.ok(reply.text.includes(`"id":${idText}`), `${r.command}: id ${idText} echoed exactly in ${reply.text}`);
      const json = JSON.parse(reply.text) as Record<string, unknown>;
      assert.equal(json.jsonrpc, '2.0');
      assert.ok(!('result' in json && 'error' in json), `${r.command}: never both result and error`);
      assert.ok('result' in json && json.result !== null, `${r.command}: ${method} has a non-null result: ${reply.text}`);
      if (method === 'DotmeshRPC.Commit') {
        const fake = r.printed.map((l) => l.match(UUID)?.[0]).find((id) => id !== undefined);
        if (fake) {
          fakeCommits.push(fake);
          realCommits.push(json.result as string);
          idMap.set(fake, json.result as string);
        }
      }
      if (method === 'DotmeshRPC.Transfer') lastTransfer = json.result as string;
      if (method === 'DotmeshRPC.GetTransfer') transfers.set(r.command, await transferEnd(s.admin, lastTransfer));
      checked++;
    }
    assert.ok(checked >= 40, `checked ${checked} replies`);
    assert.equal(fakeCommits.length, 3);
    // The replay's end state is what the original would have: foo has b1, master was reset.
    assert.deepEqual(await s.admin.call('Branches', { Namespace: 'admin', Name: 'foo' }), ['b1']);
    const master = await s.admin.call('Commits', { Namespace: 'admin', Name: 'foo', Branch: '' });
    assert.equal(master.at(-1)?.Id, realCommits[0]);
    assert.equal(await s.admin.call('Exists', { Namespace: 'ns2', Name: 'bar', Branch: '' }), '');

    // The transfers, as origin (bob's view) and this server now show them.
    const bob = origin.client('bob', bobKey);
    const commitIds = async (c: DotmeshClient, Namespace: string, Name: string) =>
      (await c.call('Commits', { Namespace, Name, Branch: '' })).map((x) => x.Id);
    const outcome = (command: string) => {
      const t = transfers.get(command);
      assert.ok(t, `${command} was replayed`);
      return t;
    };
    const push = outcome('dm push origin');
    assert.equal(push.Status, 'finished', push.Message);
    assert.deepEqual(await commitIds(bob, 'bob', 'foo'), await commitIds(s.admin, 'admin', 'foo'), 'master arrived whole');
    assert.equal(await bob.call('Lookup', { Namespace: 'bob', Name: 'foo', Branch: '' }), idMap.get(FOO_MASTER_ID));
    // The same dot under a second name on one server would be two dots sharing an id: refused.
    const rename = outcome('dm push origin foo b1 --remote-name bob/foo2');
    assert.equal(rename.Status, 'error');
    assert.match(rename.Message, /bob\/foo2 would be a second copy of bob\/foo/);
    assert.equal(await bob.call('Exists', { Namespace: 'bob', Name: 'foo2', Branch: '' }), '');
    assert.deepEqual(await bob.call('Branches', { Namespace: 'bob', Name: 'foo' }), []);
    const pull = outcome('dm pull origin foo');
    assert.equal(pull.Status, 'finished', pull.Message);
    assert.match(pull.Message, /up-to-date, nothing to do/);
    const clone = outcome('dm clone origin alice/apples --local-name apples');
    assert.equal(clone.Status, 'finished', clone.Message);
    assert.equal(await s.admin.call('Lookup', { Namespace: 'admin', Name: 'apples', Branch: '' }), applesId);
    assert.deepEqual(await commitIds(s.admin, 'admin', 'apples'), await commitIds(bob, 'alice', 'apples'));
    const latest = (await s.admin.call('Commits', { Namespace: 'admin', Name: 'apples', Branch: '' })).at(-1)!;
    assert.equal(latest.Metadata.message, 'first apple');
    const mountedApples = await (s.driver as MemoryDriver).readFile(applesId, '__default__/apple.txt');
    assert.equal(mountedApples.toString(), 'red');
  });
});
