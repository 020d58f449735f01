import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallParamsOf, DotmeshClient, TransferPollResult } from '@dotmesh/rpc';
import { MemoryDriver } from '@dotmesh/storage';
import { TRANSFERS_PREFIX } from '@dotmesh/transfer';
import { type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';

/**
 * Push, pull and clone between two whole servers in this process (in-memory driver, loopback):
 * the transfer engine, the /transfer/v1 endpoints and the receiving side's rules. The real
 * btrfs + network-namespace runs are in packages/e2e/test/transfer*.test.ts.
 */
describe('transfers between two servers (in-memory driver)', () => {
  let a: InProcessServer;
  let b: InProcessServer;
  const da = () => a.driver as MemoryDriver;
  const db = () => b.driver as MemoryDriver;

  before(async () => {
    a = await startInProcess({ driver: new MemoryDriver({ poolId: 'aaaaaaaaaaaa0001' }) });
    b = await startInProcess({ driver: new MemoryDriver({ poolId: 'bbbbbbbbbbbb0002' }) });
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  const peerOf = (s: InProcessServer) => ({ Peer: '127.0.0.1', User: 'admin', Port: s.server.port, ApiKey: s.apiKey });
  const request = (
    peer: InProcessServer,
    direction: 'push' | 'pull',
    o: { local: string; remote?: string; branch?: string; stash?: boolean; ns?: string },
  ): CallParamsOf<'Transfer'> => ({
    ...peerOf(peer),
    Direction: direction,
    LocalNamespace: 'admin',
    LocalName: o.local,
    LocalBranchName: o.branch ?? '',
    RemoteNamespace: o.ns ?? 'admin',
    RemoteName: o.remote ?? o.local,
    RemoteBranchName: o.branch ?? '',
    TargetCommit: '',
    StashDivergence: o.stash ?? false,
    PeerCertSha256: '',
    PeerHttps: false,
  });

  async function transfer(initiator: DotmeshClient, req: CallParamsOf<'Transfer'>): Promise<TransferPollResult> {
    const id = await initiator.call('Transfer', req);
    for (let i = 0; i < 200; i++) {
      const r = await initiator.call('GetTransfer', id);
      if (r.Status === 'finished' || r.Status === 'error') return r;
      await sleep(25);
    }
    throw new Error('transfer did not end');
  }

  const fsIdOf = (s: InProcessServer, name: string, branch = '') =>
    s.admin.call('Lookup', { Namespace: 'admin', Name: name, Branch: branch });
  const commitIds = async (s: InProcessServer, name: string, branch = '') =>
    (await s.admin.call('Commits', { Namespace: 'admin', Name: name, Branch: branch })).map((c) => c.Id);
  const commit = (s: InProcessServer, name: string, message: string, branch = '') =>
    s.admin.call('Commit', { Namespace: 'admin', Name: name, Branch: branch, Message: message, Metadata: { colour: 'green' } });

  test('push creates the dot on the peer with the same id, commits, metadata and data', async () => {
    await a.admin.call('Create', { Namespace: 'admin', Name: 'apples' });
    const id = await fsIdOf(a, 'apples');
    await da().writeFile(id, '__default__/hello.txt', 'hello from a');
    await commit(a, 'apples', 'first');
    const r = await transfer(a.admin, request(b, 'push', { local: 'apples' }));
    assert.equal(r.Status, 'finished', r.Message);
    assert.equal(r.Index, r.Total);
    assert.equal(r.ApiKey, '');
    assert.ok(r.Sent > 0 && r.Size >= r.Sent, `Size ${r.Size} >= Sent ${r.Sent}`);
    assert.equal(await fsIdOf(b, 'apples'), id);
    assert.deepEqual(await commitIds(b, 'apples'), await commitIds(a, 'apples'));
    const [ca, cb] = await Promise.all([
      a.admin.call('Commits', { Namespace: 'admin', Name: 'apples', Branch: '' }),
      b.admin.call('Commits', { Namespace: 'admin', Name: 'apples', Branch: '' }),
    ]);
    assert.deepEqual(cb, ca, 'metadata arrives intact');
    assert.equal((await db().readFile(id, '__default__/hello.txt')).toString(), 'hello from a');
  });

  test('a second push sends only the new commit; an up-to-date push does nothing', async () => {
    const id = await fsIdOf(a, 'apples');
    await da().writeFile(id, '__default__/hello.txt', 'second version');
    await commit(a, 'apples', 'second');
    const r = await transfer(a.admin, request(b, 'push', { local: 'apples' }));
    assert.equal(r.Status, 'finished', r.Message);
    assert.equal(r.Total, 1);
    assert.deepEqual(await commitIds(b, 'apples'), await commitIds(a, 'apples'));
    assert.equal((await db().readFile(id, '__default__/hello.txt')).toString(), 'second version');
    const again = await transfer(a.admin, request(b, 'push', { local: 'apples' }));
    assert.equal(again.Status, 'finished');
    assert.match(again.Message, /up-to-date/);
  });

  test('the size estimate does not hold the data back: the push ends while it is still being worked out', async () => {
    await a.admin.call('Create', { Namespace: 'admin', Name: 'slow-estimate' });
    const id = await fsIdOf(a, 'slow-estimate');
    await da().writeFile(id, '__default__/data.bin', 'x'.repeat(64 * 1024));
    await commit(a, 'slow-estimate', 'one');
    const driver = da();
    const measure = driver.commitSizes.bind(driver);
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let asked = 0;
    driver.commitSizes = async (volumeId) => {
      asked++;
      await gate;
      return measure(volumeId);
    };
    try {
      const r = await transfer(a.admin, request(b, 'push', { local: 'slow-estimate' }));
      assert.equal(r.Status, 'finished', r.Message);
      assert.ok(asked > 0, 'the estimate was asked for');
      assert.ok(r.Sent > 64 * 1024, `sent ${r.Sent}`);
      assert.equal(r.Size, r.Sent, 'with no estimate, Size ends as the bytes sent');
      assert.deepEqual(await commitIds(b, 'slow-estimate'), await commitIds(a, 'slow-estimate'));
      assert.equal((await db().readFile(id, '__default__/data.bin')).length, 64 * 1024);
    } finally {
      driver.commitSizes = measure;
      release();
    }
  });

  test('pull brings the peer’s new commits back', async () => {
    const id = await fsIdOf(b, 'apples');
    await db().writeFile(id, '__default__/from-b.txt', 'b wrote this');
    await commit(b, 'apples', 'on b');
    const r = await transfer(a.admin, request(b, 'pull', { local: 'apples' }));
    assert.equal(r.Status, 'finished', r.Message);
    assert.deepEqual(await commitIds(a, 'apples'), await commitIds(b, 'apples'));
    assert.equal((await da().readFile(id, '__default__/from-b.txt')).toString(), 'b wrote this');
  });

  test('clone a branch of a branch of a branch: the origin chain travels with it', async () => {
    await b.admin.call('Create', { Namespace: 'admin', Name: 'tree' });
    await commit(b, 'tree', 'm1');
    let source = 'master';
    for (const br of ['b1', 'b2', 'b3']) {
      const head = (await commitIds(b, 'tree', source === 'master' ? '' : source)).at(-1)!;
      await b.admin.call('Branch', {
        Namespace: 'admin',
        Name: 'tree',
        SourceBranch: source,
        NewBranchName: br,
        SourceCommitId: head,
      });
      await db().writeFile(await fsIdOf(b, 'tree', br), `__default__/${br}.txt`, br);
      await commit(b, 'tree', `on ${br}`, br);
      source = br;
    }
    const r = await transfer(a.admin, request(b, 'pull', { local: 'tree', branch: 'b3' }));
    assert.equal(r.Status, 'finished', r.Message);
    assert.deepEqual(await commitIds(a, 'tree', 'b3'), await commitIds(b, 'tree', 'b3'));
    assert.equal((await da().readFile(await fsIdOf(a, 'tree', 'b3'), '__default__/b2.txt')).toString(), 'b2');
    assert.deepEqual(await a.admin.call('Branches', { Namespace: 'admin', Name: 'tree' }), ['b1', 'b2', 'b3']);
    // the intermediate branches hold exactly their part of the chain
    assert.deepEqual(await commitIds(a, 'tree', 'b1'), await commitIds(b, 'tree', 'b1'));
  });

  test('divergence is refused with the common commit named; nothing changes on either side', async () => {
    const ida = await fsIdOf(a, 'apples');
    const common = (await commitIds(a, 'apples')).at(-1)!;
    await da().writeFile(ida, '__default__/x', 'a side');
    const aOnly = await commit(a, 'apples', 'a only');
    await db().writeFile(ida, '__default__/x', 'b side');
    const bOnly = await commit(b, 'apples', 'b only');
    const [beforeA, beforeB] = [await commitIds(a, 'apples'), await commitIds(b, 'apples')];
    const r = await transfer(a.admin, request(b, 'push', { local: 'apples' }));
    assert.equal(r.Status, 'error');
    assert.match(r.Message, /diverged after commit/);
    // The record keeps the structured error: code, hint and the data to act on.
    assert.equal(r.Error?.code, 'DIVERGED', r.Message);
    assert.match(r.Error?.hint ?? '', /--stash-on-divergence/);
    assert.equal(r.Message, `${r.Error?.message} (${r.Error?.hint})`, 'Message stays the human text');
    assert.deepEqual(r.Error?.data, {
      common,
      sender: `admin/apples@master (this server)`,
      receiver: `admin/apples@master (peer 127.0.0.1:${b.server.port})`,
      senderExtra: [aOnly],
      receiverExtra: [bOnly],
      senderExtraCount: 1,
      receiverExtraCount: 1,
    });
    // ... and so does the record in the store (what any node's GetTransfer and a restart read).
    const key = `${TRANSFERS_PREFIX}${r.TransferRequestId}`;
    let stored: TransferPollResult | undefined;
    for (let i = 0; i < 100 && stored?.Status !== 'error'; i++, await sleep(20)) {
      const kv = await a.store.get(key);
      stored = kv ? JSON.parse(kv.value) : undefined;
    }
    assert.deepEqual(stored?.Error, r.Error);
    assert.deepEqual(await commitIds(a, 'apples'), beforeA);
    assert.deepEqual(await commitIds(b, 'apples'), beforeB);
  });

  test('push --stash-on-divergence keeps the receiver’s commits on a master-DIVERGED- branch', async () => {
    const bOnly = (await commitIds(b, 'apples')).at(-1)!;
    const r = await transfer(a.admin, request(b, 'push', { local: 'apples', stash: true }));
    assert.equal(r.Status, 'finished', r.Message);
    assert.deepEqual(await commitIds(b, 'apples'), await commitIds(a, 'apples'));
    const branches = await b.admin.call('Branches', { Namespace: 'admin', Name: 'apples' });
    const stash = branches.find((x) => x.startsWith('master-DIVERGED-'));
    assert.ok(stash, `a DIVERGED branch in ${branches}`);
    assert.equal((await commitIds(b, 'apples', stash)).at(-1), bOnly, 'the stashed branch keeps b’s commit');
    assert.equal((await db().readFile(await fsIdOf(b, 'apples'), '__default__/x')).toString(), 'a side');
  });

  test('uncommitted changes on the receiving side abort with the original message', async () => {
    await db().writeFile(await fsIdOf(b, 'apples'), '__default__/dirty', 'not committed');
    await rejectsCode(
      a.admin.call('Transfer', request(b, 'push', { local: 'apples' })),
      'CONFLICT',
      /^Aborting because there are \d+\.\d\d MiB of uncommitted changes on volume where data would be written\. Use 'dm reset' to roll back\.$/,
    );
  });

  test('the wrong API key, a missing dot and different ids are refused at once', async () => {
    await rejectsCode(
      a.admin.call('Transfer', { ...request(b, 'push', { local: 'apples' }), ApiKey: 'wrong' }),
      'UNAUTHENTICATED',
    );
    await rejectsCode(a.admin.call('Transfer', request(b, 'push', { local: 'nope' })), 'DOT_NOT_FOUND', /^Both local and remote/);
    await rejectsCode(
      a.admin.call('Transfer', request(b, 'pull', { local: 'apples', remote: 'nope' })),
      'DOT_NOT_FOUND',
      /^Can't pull when remote doesn't exist$/,
    );
    await a.admin.call('Create', { Namespace: 'admin', Name: 'twin' });
    await b.admin.call('Create', { Namespace: 'admin', Name: 'twin' });
    await rejectsCode(
      a.admin.call('Transfer', request(b, 'push', { local: 'twin' })),
      'CONFLICT',
      /^Cannot reconcile filesystems with different ids/,
    );
  });

  test('cloning a dot that is here under another name says so in names, not ids', async () => {
    const id = await fsIdOf(a, 'apples');
    const message = await transfer(a.admin, request(b, 'pull', { local: 'apples-copy', remote: 'apples' })).then(
      (r) => (r.Status === 'error' ? r.Message : assert.fail(`the clone ${r.Status}`)),
      (e: Error) => e.message,
    );
    assert.match(
      message,
      /admin\/apples-copy would be a second copy of admin\/apples: the receiving side has this dot already, as admin\/apples/,
    );
    assert.ok(!message.includes(id), message);
    await rejectsCode(a.admin.call('Lookup', { Namespace: 'admin', Name: 'apples-copy', Branch: '' }), 'DOT_NOT_FOUND');
  });

  test('DeducePathToTopLevelFilesystem, PredictSize and StashAfter answer in the original’s shapes', async () => {
    const path = await b.admin.call('DeducePathToTopLevelFilesystem', {
      RemoteNamespace: 'admin',
      RemoteFilesystemName: 'tree',
      RemoteCloneName: 'b2',
    });
    const dotId = await fsIdOf(b, 'tree');
    assert.equal(path.TopLevelFilesystemId, dotId);
    assert.deepEqual(path.TopLevelFilesystemName, { Namespace: 'admin', Name: 'tree' });
    assert.deepEqual(
      path.Clones.map((c) => c.Name),
      ['b1', 'b2'],
    );
    assert.equal(path.Clones[0]!.Clone.Origin.FilesystemId, dotId);
    assert.equal(path.Clones[1]!.Clone.Origin.FilesystemId, await fsIdOf(b, 'tree', 'b1'));
    assert.equal(path.Clones[1]!.Clone.FilesystemId, await fsIdOf(b, 'tree', 'b2'));
    const master = await b.admin.call('DeducePathToTopLevelFilesystem', {
      RemoteNamespace: 'admin',
      RemoteFilesystemName: 'tree',
      RemoteCloneName: '',
    });
    assert.deepEqual(master.Clones, []);

    const b1 = await fsIdOf(b, 'tree', 'b1');
    const [first, second] = await commitIds(b, 'tree', 'b1').then((ids) => ids.slice(-2));
    const full = await b.admin.call('PredictSize', {
      FromFilesystemId: '',
      FromSnapshotId: 'START',
      ToFilesystemId: b1,
      ToSnapshotId: second!,
    });
    assert.ok(full > 0, `a full stream has a size (${full})`);
    const incremental = await b.admin.call('PredictSize', {
      FromFilesystemId: dotId,
      FromSnapshotId: first!,
      ToFilesystemId: b1,
      ToSnapshotId: second!,
    });
    assert.ok(incremental >= 0 && incremental <= full, `${incremental} <= ${full}`);

    // StashAfter returns the new branch's name (the original returned "TODO")
    await db().writeFile(b1, '__default__/later', 'later');
    const later = await commit(b, 'tree', 'later', 'b1');
    const name = await b.admin.call('StashAfter', { FilesystemId: b1, SnapshotId: second! });
    assert.match(name, /^b1-DIVERGED-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ$/);
    assert.equal((await commitIds(b, 'tree', 'b1')).at(-1), second);
    assert.equal((await commitIds(b, 'tree', name)).at(-1), later);
    assert.equal(
      await b.admin.call('StashAfter', { FilesystemId: b1, SnapshotId: second! }),
      '',
      'nothing after it: nothing moved',
    );
  });

  test('a branch made independently on each side under one name: refused, or renamed aside with stash', async () => {
    await a.admin.call('Create', { Namespace: 'admin', Name: 'twins' });
    const r0 = await transfer(a.admin, request(b, 'push', { local: 'twins' }));
    assert.equal(r0.Status, 'finished', r0.Message);
    const base = (await commitIds(a, 'twins')).at(-1)!;
    for (const s of [a, b]) {
      await s.admin.call('Branch', {
        Namespace: 'admin',
        Name: 'twins',
        SourceBranch: 'master',
        NewBranchName: 'feature',
        SourceCommitId: base,
      });
      await commit(s, 'twins', `feature on ${s === a ? 'a' : 'b'}`, 'feature');
    }
    const bFeature = await fsIdOf(b, 'twins', 'feature');
    const bCommits = await commitIds(b, 'twins', 'feature');
    await rejectsCode(
      a.admin.call('Transfer', request(b, 'push', { local: 'twins', branch: 'feature' })),
      'DIVERGED',
      /^branch feature of admin\/twins was made independently on each side/,
    );
    const r = await transfer(a.admin, request(b, 'push', { local: 'twins', branch: 'feature', stash: true }));
    assert.equal(r.Status, 'finished', r.Message);
    assert.match(r.Message, /renamed feature-DIVERGED-/);
    assert.equal(await fsIdOf(b, 'twins', 'feature'), await fsIdOf(a, 'twins', 'feature'));
    assert.deepEqual(await commitIds(b, 'twins', 'feature'), await commitIds(a, 'twins', 'feature'));
    const renamed = (await b.admin.call('Branches', { Namespace: 'admin', Name: 'twins' })).find((x) =>
      x.startsWith('feature-DIVERGED-'),
    )!;
    assert.equal(await fsIdOf(b, 'twins', renamed), bFeature, 'b’s own branch kept its id and commits');
    assert.deepEqual(await commitIds(b, 'twins', renamed), bCommits);
  });

  test('a peer’s refusal reaches the initiator’s record as the same error: code, hint and data', async () => {
    const id = await fsIdOf(a, 'apples');
    assert.equal(await fsIdOf(b, 'apples'), id, 'b holds apples under its own name');
    const r = await transfer(a.admin, request(b, 'push', { local: 'apples', remote: 'apples-again' }));
    assert.equal(r.Status, 'error');
    assert.equal(r.Error?.code, 'CONFLICT', r.Message);
    assert.ok(r.Error?.message.startsWith(`peer 127.0.0.1:${b.server.port}: `), r.Error?.message);
    assert.match(r.Error?.hint ?? '', /admin\/apples/);
    assert.deepEqual(r.Error?.data, {
      dotId: id,
      existing: { namespace: 'admin', name: 'apples' },
      requested: { namespace: 'admin', name: 'apples-again' },
    });
    await rejectsCode(fsIdOf(b, 'apples-again'), 'DOT_NOT_FOUND');
  });
});
