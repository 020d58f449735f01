import assert from 'node:assert/strict';
import { readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, makeTempDir, skipUnless } from '@dotmesh/testkit';
import { initCluster, type TestCluster } from './cluster-harness.ts';

/**
 * The original Dotmesh's single-node acceptance scenarios that apply without Docker and S3
 * (original-dotmesh.md §14: TestSingleNode, TestDefaultDot, TestDeletionSimple,
 * TestDeletionComplex), with the built `dm` against a cluster made by `dm cluster init`.
 */
const skip = skipUnless(['root', 'btrfs', 'losetup']);

describe('TestSingleNode (ported)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  let mnt: string;
  before(async () => {
    c = await initCluster(cleanup);
    mnt = await makeTempDir('mnt-', cleanup);
  });
  after(async () => cleanup.run());

  test('Init', async () => {
    await c.ok(['init', 'basic']);
    assert.match(await c.ok(['list']), /\* basic\s+master\s/);
  });

  test('InitDuplicate', async () => {
    const r = await c.dm(['init', 'basic']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error: basic exists already/);
  });

  test('InitCrashSafety', async () => {
    await c.ok(['debug', 'SetDebugFlag', '{"FlagName":"PartialFailCreateFilesystem","FlagValue":"true"}']);
    const failed = await c.dm(['init', 'crashy']);
    assert.notEqual(failed.code, 0);
    assert.match(failed.stderr, /Injected fault/);
    await c.ok(['init', 'crashy']);
    assert.match(await c.ok(['list']), /crashy/);
  });

  test('Version', async () => {
    const out = await c.ok(['version']);
    const tokens = out.slice(out.indexOf('Client:')).split(/\s+/).filter(Boolean);
    assert.equal(tokens.length, 6, out);
    assert.deepEqual([tokens[0], tokens[1], tokens[3], tokens[4]], ['Client:', 'Version:', 'Server:', 'Version:']);
  });

  test('Commit', async () => {
    await c.ok(['switch', 'basic']);
    await c.ok(['mount', 'basic', join(mnt, 'basic')]);
    await writeFile(join(mnt, 'basic', 'HELLO'), 'world');
    const id = (await c.ok(['commit', '-m', 'hello'])).trim();
    const log = await c.ok(['log']);
    assert.ok(log.includes(`commit ${id}\n`));
    assert.match(log, /\n {4}hello\n/);
  });

  test('CommitIdOverride', async () => {
    const id = (await c.ok(['commit', '-m', 'named', '-d', '#commit-id=my-commit-id'])).trim();
    assert.equal(id, 'my-commit-id');
    assert.match(await c.ok(['log']), /commit my-commit-id\n/);
    const dup = await c.dm(['commit', '-m', 'again', '-d', '#commit-id=my-commit-id']);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /already exists/);
  });

  test('Branch: checkout -b and checkout change what the mount shows', async () => {
    await c.ok(['checkout', '-b', 'branch1']);
    assert.equal(await readFile(join(mnt, 'basic', 'HELLO'), 'utf8'), 'world');
    await writeFile(join(mnt, 'basic', 'HELLO'), 'branch world');
    await c.ok(['commit', '-m', 'on branch1']);
    await c.ok(['checkout', 'master']);
    assert.equal(await readFile(join(mnt, 'basic', 'HELLO'), 'utf8'), 'world');
    await c.ok(['checkout', 'branch1']);
    assert.equal(await readFile(join(mnt, 'basic', 'HELLO'), 'utf8'), 'branch world');
    assert.match(await c.ok(['branch']), /\* branch1\n {2}master\n/);
    const exists = await c.dm(['checkout', '-b', 'branch1']);
    assert.match(exists.stderr, /Branch already exists: branch1/);
    const missing = await c.dm(['checkout', 'nope']);
    assert.match(missing.stderr, /Branch does not exist: nope/);
    await c.ok(['checkout', 'master']);
  });

  test('DotShow', async () => {
    const out = await c.ok(['dot', 'show']);
    assert.match(out, /^Dot admin\/basic:\nMaster branch ID: [0-9a-f-]{36}\nDot is currently selected\.\nCommits: 3\n/);
    assert.match(out, /Dot size: .* \(all clean\)/);
    assert.equal((out.match(/server .* is up to date/g) ?? []).length >= 2, true, out);
    const scripted = await c.ok(['dot', 'show', '-H']);
    assert.match(scripted, /^namespace\tadmin\nname\tbasic\nmasterBranchId\t[0-9a-f-]{36}\nselected\ncommitCount\t3\n/);
    assert.match(scripted, /\nbranch\t[0-9a-f-]{36}\tbranch1\n/);
  });

  test('Reset: --hard HEAD^ brings back the previous commit', async () => {
    await writeFile(join(mnt, 'basic', 'HELLO'), 'second');
    await c.ok(['commit', '-m', 'second']);
    await c.ok(['reset', '--hard', 'HEAD^']);
    assert.equal(await readFile(join(mnt, 'basic', 'HELLO'), 'utf8'), 'world');
    assert.doesNotMatch(await c.ok(['log']), /second/);
    const tooFar = await c.dm(['reset', '--hard', 'HEAD^^^^^^^^']);
    assert.match(tooFar.stderr, /Commits don't go back that far/);
  });

  test('AllDotsAndBranches', async () => {
    const all = JSON.parse(await c.ok(['debug', 'AllDotsAndBranches'])) as {
      Dots: Array<{ MasterBranch: { Name: { Name: string } }; OtherBranches: unknown[] | null }>;
    };
    const basic = all.Dots.find((d) => d.MasterBranch.Name.Name === 'basic');
    assert.ok(basic);
    assert.equal(basic.OtherBranches?.length, 1);
  });

  test('MountExistingDot / MountNewDot / MountNewDotFailure', async () => {
    await c.ok(['mount', 'basic', join(mnt, 'again')]);
    assert.equal(await readFile(join(mnt, 'again', 'HELLO'), 'utf8'), 'world');
    assert.ok((await readlink(join(mnt, 'again'))).endsWith('/__default__'));
    const failure = await c.dm(['mount', 'brandnew', join(mnt, 'new')]);
    assert.notEqual(failure.code, 0);
    await c.ok(['mount', '--create', 'brandnew', join(mnt, 'new')]);
    await writeFile(join(mnt, 'new', 'x'), 'y');
    assert.match(await c.ok(['list']), /brandnew/);
  });

  test('CommitMetadata', async () => {
    await c.ok(['commit', '-m', 'with metadata', '-d', 'apples=green', '-d', 'empty=']);
    const log = await c.ok(['log']);
    assert.match(log, /apples: green\n/);
    assert.match(log, /empty: \n/);
  });

  test('CommitMetadataUppercaseFailure', async () => {
    const r = await c.dm(['commit', '-m', 'x', '-d', 'Apples=green']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Metadata field names must start with lowercase characters: Apples/);
  });

  test('CommitMetadataNoEqualsFailure', async () => {
    const r = await c.dm(['commit', '-m', 'x', '-d', 'foo']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Each metadata value must be a name=value pair: foo/);
  });

  test('MassiveMetadata', async () => {
    await c.ok(['commit', '-m', 'massive', '-d', `big=${'x'.repeat(2000)}`]);
    assert.ok((await c.ok(['log'])).includes(`big: ${'x'.repeat(2000)}\n`));
  });

  test('ApiKeys: GetApiKey; ResetApiKey needs the password; the old key stops working', async () => {
    const key = await c.apiKey();
    assert.deepEqual(JSON.parse(await c.ok(['debug', 'GetApiKey'])), { ApiKey: key });
    const refused = await c.dm(['debug', 'ResetApiKey']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Password authentication is required/);
    const password = (await readFile(join(c.home, '.dotmesh', 'admin-password.txt'), 'utf8')).trim();
    await c.ok(['remote', 'add', 'bypassword', `admin@127.0.0.1:${c.port}`], { env: { DOTMESH_PASSWORD: password } });
    await c.ok(['remote', 'switch', 'bypassword']);
    const { ApiKey } = JSON.parse(await c.ok(['debug', 'ResetApiKey'])) as { ApiKey: string };
    assert.notEqual(ApiKey, key);
    assert.deepEqual(JSON.parse(await c.ok(['debug', 'GetApiKey'])), { ApiKey }, 'by password: the key sealed under it');
    await c.ok(['remote', 'switch', 'local']);
    const stale = await c.dm(['list']);
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /Permission denied\. Please check that your API key is still valid\./);
    await c.ok(['remote', 'rm', 'local']);
    await c.ok(['remote', 'add', 'local', `admin@127.0.0.1:${c.port}`], { env: { DOTMESH_PASSWORD: ApiKey } });
    await c.ok(['remote', 'switch', 'local']);
    await c.ok(['list']);
  });
});

describe('TestDefaultDot (ported)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  before(async () => {
    c = await initCluster(cleanup);
  });
  after(async () => cleanup.run());

  test('DefaultDotSwitch: a single dot is selected by itself', async () => {
    await (await c.client()).call('Create', { Namespace: 'admin', Name: 'only' });
    await c.ok(['commit', '-m', 'auto-selected']);
    assert.match(await c.ok(['log']), /auto-selected/);
  });

  test('NoDefaultDotError: none selected among several', async () => {
    const client = await c.client();
    await client.call('Create', { Namespace: 'admin', Name: 'second' });
    const config = join(c.home, '.dotmesh', 'config');
    const json = JSON.parse(await readFile(config, 'utf8'));
    json.Remotes.local.CurrentVolume = '';
    await writeFile(config, JSON.stringify(json));
    const r = await c.dm(['commit', '-m', 'which one?']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /No current dot is selected. List them with 'dm list' and select one with 'dm switch'./);
  });
});

describe('TestDeletionSimple and TestDeletionComplex (ported)', { skip }, () => {
  const cleanup = new Cleanup();
  let c: TestCluster;
  before(async () => {
    c = await initCluster(cleanup);
  });
  after(async () => cleanup.run());

  test('DeleteNonexistantFails', async () => {
    const r = await c.dm(['dot', 'delete', '-f', 'nothing-here']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /nothing-here/);
  });

  test('DeleteInstantly', async () => {
    await c.ok(['init', 'instant']);
    await c.ok(['dot', 'delete', '-f', 'instant']);
    assert.doesNotMatch(await c.ok(['list']), /instant/);
  });

  test('DeletePartialFailure: an injected failure leaves the dot whole; a retry deletes it', async () => {
    await c.ok(['init', 'partial']);
    const client = await c.client();
    await client.call('SetDebugFlag', { FlagName: 'PartialFailDelete', FlagValue: 'true' });
    await assert.rejects(client.call('Delete', { Namespace: 'admin', Name: 'partial' }), /Injected fault/);
    assert.match(await c.ok(['list']), /partial/);
    await c.ok(['commit', '-m', 'still usable']);
    await c.ok(['dot', 'delete', '-f', 'partial']);
    assert.doesNotMatch(await c.ok(['list']), /partial/);
  });

  for (const [name, pause] of [
    ['DeleteQuickly', 0],
    ['DeleteSlowly', 1500],
  ] as const) {
    test(`${name}: the name can be reused`, async () => {
      const dot = name.toLowerCase();
      await c.ok(['init', dot]);
      await c.ok(['commit', '-m', 'before']);
      await new Promise((r) => setTimeout(r, pause));
      await c.ok(['dot', 'delete', '-f', dot]);
      await new Promise((r) => setTimeout(r, pause));
      await c.ok(['init', dot]);
      assert.doesNotMatch(await c.ok(['log']), /before/);
    });

    test(`${name.replace('Delete', 'DeleteBranches')}: a dot with branches goes with them`, async () => {
      const dot = `${name.toLowerCase()}-branches`;
      await c.ok(['init', dot]);
      await c.ok(['checkout', '-b', 'b1']);
      await c.ok(['commit', '-m', 'on b1']);
      await c.ok(['checkout', '-b', 'b2']);
      await c.ok(['commit', '-m', 'on b2']);
      await new Promise((r) => setTimeout(r, pause));
      await c.ok(['dot', 'delete', '-f', dot]);
      await c.ok(['init', dot]);
      assert.equal(await c.ok(['branch']), '* master\n');
    });
  }
});
