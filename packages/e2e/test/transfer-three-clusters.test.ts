import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Cleanup, skipUnless } from '@dotmesh/testkit';
import {
  addUserRemote,
  type Cluster,
  commitIds,
  dmLogIds,
  dotId,
  type Federation,
  listed,
  readData,
  registerUser,
  startFederation,
  type TestUser,
  writeData,
} from './transfer-harness.ts';

/**
 * The original's TestThreeSingleNodeClusters and TestForks (original-dotmesh.md §14) with the
 * built `dm`: three single-node clusters on three test hosts — `hub` (the common cluster, where
 * alice and bob are users), `alice` and `bob` (each user's own cluster, where they are admin).
 * Every HOME has `local` and an admin remote for each other cluster (`hub`, `alice`, `bob`);
 * the scenarios add user remotes (`alice@hub`, `bob@hub`) with the users' API keys.
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup']);

describe('TestThreeSingleNodeClusters (ported)', { skip }, () => {
  const cleanup = new Cleanup();
  let fed: Federation;
  let hub: Cluster;
  let aliceNode: Cluster;
  let bobNode: Cluster;
  let alice: TestUser;
  let bob: TestUser;

  before(async () => {
    fed = await startFederation(cleanup, ['hub', 'alice', 'bob']);
    [hub, aliceNode, bobNode] = fed.clusters as [Cluster, Cluster, Cluster];
    alice = await registerUser(hub, 'alice');
    bob = await registerUser(hub, 'bob');
  });
  after(() => cleanup.run());
  beforeEach(async () => {
    await fed?.resetCurrentRemotes();
  });

  /** `dm init <dot>` (now the current dot), a file named after the cluster, `dm commit`. */
  async function makeDot(c: Cluster, dot: string, message: string): Promise<string> {
    await c.ok(['init', dot]);
    await writeData(c, dot, c.name, `${c.name} was here`);
    return (await c.ok(['commit', '-m', message])).trim();
  }

  /** The first column of `dm list -H` on `c` (the names `dm` shows, `admin/` elided). */
  async function dmListed(c: Cluster): Promise<string[]> {
    const out = await c.ok(['list', '-H']);
    return out
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t')[0]!)
      .sort();
  }

  /** The `defaultUpstreamDot` lines of `dm dot show -H <dot>`. */
  async function upstreams(c: Cluster, dot: string): Promise<string[]> {
    const out = await c.ok(['dot', 'show', '-H', dot]);
    return out.split('\n').filter((l) => l.startsWith('defaultUpstreamDot\t'));
  }

  test('TwoUsersSameNamedVolume: alice/apples and bob/apples are two dots; each user clones the other’s', async () => {
    await makeDot(aliceNode, 'apples', 'Alice commits');
    await aliceNode.ok(['push', 'hub', 'apples', '--remote-name', 'alice/apples']);
    await makeDot(bobNode, 'apples', 'Bob commits');
    await bobNode.ok(['push', 'hub', 'apples', '--remote-name', 'bob/apples']);

    await aliceNode.ok(['clone', 'hub', 'bob/apples', '--local-name', 'bob-apples']);
    await bobNode.ok(['clone', 'hub', 'alice/apples', '--local-name', 'alice-apples']);

    assert.deepEqual(
      (await dmListed(hub)).filter((d) => d.includes('apples')),
      ['alice/apples', 'bob/apples'],
    );
    assert.deepEqual(
      (await dmListed(aliceNode)).filter((d) => d.includes('apples')),
      ['apples', 'bob-apples'],
    );
    assert.deepEqual(
      (await dmListed(bobNode)).filter((d) => d.includes('apples')),
      ['alice-apples', 'apples'],
    );
    // the right contents, and the same dots (ids) everywhere
    assert.equal(await readData(aliceNode, 'bob-apples', 'bob'), 'bob was here');
    assert.equal(await readData(bobNode, 'alice-apples', 'alice'), 'alice was here');
    assert.equal(await dotId(hub, 'alice/apples'), await dotId(aliceNode, 'apples'));
    assert.equal(await dotId(hub, 'bob/apples'), await dotId(aliceNode, 'bob-apples'));
    assert.notEqual(await dotId(hub, 'alice/apples'), await dotId(hub, 'bob/apples'));
    assert.deepEqual(await commitIds(bobNode, 'alice-apples'), await commitIds(aliceNode, 'apples'));
    // each user sees only their own dot on the hub
    assert.deepEqual(
      (await listed(alice.client)).filter((d) => d.includes('apples')),
      ['alice/apples'],
    );
    assert.deepEqual(
      (await listed(bob.client)).filter((d) => d.includes('apples')),
      ['bob/apples'],
    );

    // bob commits again; alice pulls it
    await writeData(bobNode, 'apples', 'bob2', 'bob again');
    await bobNode.ok(['switch', 'apples']);
    await bobNode.ok(['commit', '-m', 'Bob commits again']);
    await bobNode.ok(['push', 'hub', 'apples', '--remote-name', 'bob/apples']);
    await aliceNode.ok(['pull', 'hub', 'bob-apples', '--remote-name', 'bob/apples']);
    assert.equal(await readData(aliceNode, 'bob-apples', 'bob2'), 'bob again');
    assert.deepEqual(await commitIds(aliceNode, 'bob-apples'), await commitIds(bobNode, 'apples'));
  });

  test('ShareBranches: bob clones a branch alice pushed, with the master commits it starts from', async () => {
    await makeDot(aliceNode, 'cress', 'Alice commits');
    await aliceNode.ok(['push', 'hub', 'cress', '--remote-name', 'alice/cress']);
    await aliceNode.ok(['checkout', '-b', 'mustard']);
    await writeData(aliceNode, 'cress@mustard', 'mustard', 'mustard');
    await aliceNode.ok(['commit', '-m', 'Alice commits mustard']);
    await aliceNode.ok(['push', 'hub', 'cress', 'mustard', '--remote-name', 'alice/cress']);
    assert.deepEqual(await commitIds(hub, 'alice/cress@mustard'), await commitIds(aliceNode, 'cress@mustard'));

    await bobNode.ok(['clone', 'hub', 'alice/cress', 'mustard', '--local-name', 'cress']);
    await bobNode.ok(['switch', 'cress']);
    await bobNode.ok(['checkout', 'mustard']);
    assert.deepEqual(await dmLogIds(bobNode), await commitIds(aliceNode, 'cress@mustard'));
    assert.equal(await readData(bobNode, 'cress@mustard', 'alice'), 'alice was here', 'the master commit');
    assert.equal(await readData(bobNode, 'cress@mustard', 'mustard'), 'mustard', 'the branch commit');
    // master up to where the branch starts (issue 226: it was empty)
    await bobNode.ok(['checkout', 'master']);
    assert.deepEqual(await dmLogIds(bobNode), await commitIds(aliceNode, 'cress'));
  });

  test('DefaultRemoteNamespace: a push through alice’s remote lands in alice’s namespace', async () => {
    await addUserRemote(aliceNode, 'common_pears', hub, alice);
    await makeDot(aliceNode, 'pears', 'Alice commits');
    const out = await aliceNode.ok(['push', 'common_pears']);
    assert.match(out, /Pushing admin\/pears to common_pears:alice\/pears/);
    assert.ok((await dmListed(hub)).includes('alice/pears'));
    assert.deepEqual(await commitIds(hub, 'alice/pears'), await commitIds(aliceNode, 'pears'));
    assert.ok((await listed(alice.client)).includes('alice/pears'));
  });

  test('DefaultRemoteVolume: push and clone record the upstream; pull and push without names use it', async () => {
    await addUserRemote(aliceNode, 'common_bananas', hub, alice);
    await makeDot(aliceNode, 'bananas', 'Alice commits');
    await aliceNode.ok(['push', 'common_bananas', 'bananas']);
    assert.deepEqual(await upstreams(aliceNode, 'bananas'), ['defaultUpstreamDot\tcommon_bananas\talice/bananas']);

    const id = await alice.client.call('Lookup', { Namespace: 'alice', Name: 'bananas', Branch: '' });
    assert.equal(await alice.client.call('AddCollaborator', { MasterBranchID: id, Collaborator: 'bob' }), true);

    await addUserRemote(bobNode, 'common_bananas', hub, bob);
    await bobNode.ok(['clone', 'common_bananas', 'alice/bananas', '--local-name', 'bananas']);
    await bobNode.ok(['switch', 'bananas']);
    assert.deepEqual(await upstreams(bobNode, 'bananas'), ['defaultUpstreamDot\tcommon_bananas\talice/bananas']);

    // alice adds a commit; bob pulls without naming anything (there is no bob/bananas)
    await writeData(aliceNode, 'bananas', 'more', 'more from alice');
    await aliceNode.ok(['commit', '-m', 'Alice commits more']);
    await aliceNode.ok(['push', 'common_bananas', 'bananas']);
    const pulled = await bobNode.ok(['pull', 'common_bananas']);
    assert.match(pulled, /Pulling admin\/bananas from common_bananas:alice\/bananas/);
    assert.equal(await readData(bobNode, 'bananas', 'more'), 'more from alice');

    // and pushes back the same way
    await writeData(bobNode, 'bananas', 'bob', 'bob was here');
    await bobNode.ok(['commit', '-m', 'Bob commits']);
    const pushed = await bobNode.ok(['push', 'common_bananas']);
    assert.match(pushed, /Pushing admin\/bananas to common_bananas:alice\/bananas/);
    assert.deepEqual(await commitIds(hub, 'alice/bananas'), await commitIds(bobNode, 'bananas'));
    assert.ok(!(await dmListed(hub)).includes('bob/bananas'));
    await aliceNode.ok(['pull', 'common_bananas', 'bananas']);
    assert.equal(await readData(aliceNode, 'bananas', 'bob'), 'bob was here');
  });

  test('DefaultRemoteNamespaceOverride: dm dot set-upstream replaces the recorded upstream, and push follows it', async () => {
    await addUserRemote(aliceNode, 'common_kiwis', hub, alice);
    await makeDot(aliceNode, 'kiwis', 'Alice commits');
    await aliceNode.ok(['push', 'common_kiwis']);
    assert.deepEqual(await upstreams(aliceNode, 'kiwis'), ['defaultUpstreamDot\tcommon_kiwis\talice/kiwis']);

    // the remote dot need not exist
    assert.equal(await aliceNode.ok(['dot', 'set-upstream', 'common_kiwis', 'bob/kiwis']), '');
    assert.deepEqual(await upstreams(aliceNode, 'kiwis'), ['defaultUpstreamDot\tcommon_kiwis\tbob/kiwis']);
    // a push now goes to bob/kiwis, which alice may not create
    const r = await aliceNode.fails(['push', 'common_kiwis']);
    assert.match(r.output, /Pushing admin\/kiwis to common_kiwis:bob\/kiwis/);
    // (the hub refuses: this dot is alice/kiwis there, and bob's namespace is not alice's)
    assert.match(r.output, /bob\/kiwis would be a second copy of alice\/kiwis|User is not an administrator for namespace bob/);
    assert.ok(!(await dmListed(hub)).includes('bob/kiwis'));

    // the three-argument form sets it back
    await aliceNode.ok(['dot', 'set-upstream', 'kiwis', 'common_kiwis', 'alice/kiwis']);
    assert.deepEqual(await upstreams(aliceNode, 'kiwis'), ['defaultUpstreamDot\tcommon_kiwis\talice/kiwis']);
    await writeData(aliceNode, 'kiwis', 'k2', 'again');
    await aliceNode.ok(['commit', '-m', 'again']);
    await aliceNode.ok(['push', 'common_kiwis']);
    assert.deepEqual(await commitIds(hub, 'alice/kiwis'), await commitIds(aliceNode, 'kiwis'));
  });

  test('DeleteNotMineFails: bob cannot delete alice’s dot, not even as a collaborator', async () => {
    const dot = 'deletenotmine';
    await addUserRemote(aliceNode, `common_${dot}`, hub, alice);
    await makeDot(aliceNode, dot, 'Alice commits');
    await aliceNode.ok(['push', `common_${dot}`]);
    const commits = await commitIds(hub, `alice/${dot}`);

    await addUserRemote(bobNode, `common_${dot}`, hub, bob);
    await bobNode.ok(['remote', 'switch', `common_${dot}`]);
    // bob does not even see it (nobody sees other users' dots)
    const stranger = await bobNode.fails(['dot', 'delete', '-f', `alice/${dot}`]);
    assert.match(stranger.output, new RegExp(`No such filesystem named 'alice/${dot}'`));
    assert.deepEqual(await commitIds(hub, `alice/${dot}`), commits, 'still there');

    const id = await alice.client.call('Lookup', { Namespace: 'alice', Name: dot, Branch: '' });
    await alice.client.call('AddCollaborator', { MasterBranchID: id, Collaborator: 'bob' });
    const collaborator = await bobNode.fails(['dot', 'delete', '-f', `alice/${dot}`]);
    assert.match(collaborator.output, new RegExp(`Only the owner of alice/${dot} or admin may delete it`));
    assert.deepEqual(await commitIds(hub, `alice/${dot}`), commits, 'still there');
    assert.ok((await listed(bob.client)).includes(`alice/${dot}`));
    await bobNode.ok(['remote', 'switch', 'local']);
  });

  test('NamespaceAuthorisationNonexistant: alice cannot push into a namespace that is no user', async () => {
    await addUserRemote(aliceNode, 'common_grapes', hub, alice);
    await makeDot(aliceNode, 'grapes', 'Alice commits');
    const r = await aliceNode.fails(['push', 'common_grapes', '--remote-name', 'nonexistant/grapes']);
    assert.match(r.output, /User is not an administrator for namespace nonexistant, so cannot create volumes/);
    assert.ok(!(await dmListed(hub)).includes('nonexistant/grapes'));
  });

  test('NamespaceAuthorisation: alice cannot push into bob’s namespace', async () => {
    await addUserRemote(aliceNode, 'common_passionfruit', hub, alice);
    await makeDot(aliceNode, 'passionfruit', 'Alice commits');
    const r = await aliceNode.fails(['push', 'common_passionfruit', '--remote-name', 'bob/passionfruit']);
    assert.match(r.output, /User is not an administrator for namespace bob, so cannot create volumes/);
    assert.ok(!(await dmListed(hub)).includes('bob/passionfruit'));
    assert.ok(!(await listed(bob.client)).includes('bob/passionfruit'));
  });

  test('NamespaceAuthorisationAdmin: through the hub’s admin remote, a push into bob’s namespace works and is bob’s', async () => {
    await makeDot(aliceNode, 'prune', 'Alice commits');
    await aliceNode.ok(['push', 'hub', '--remote-name', 'bob/prune']);
    assert.ok((await dmListed(hub)).includes('bob/prune'));
    assert.deepEqual(await commitIds(hub, 'bob/prune'), await commitIds(aliceNode, 'prune'));
    assert.ok((await listed(bob.client)).includes('bob/prune'), 'owned by bob');
    assert.ok(!(await listed(alice.client)).includes('bob/prune'));
  });

  describe('TestForks (on the hub)', () => {
    /** bob's dot on the hub, made with bob's own RPC calls, with one data file committed. */
    async function bobsDot(name: string, content: string): Promise<{ id: string; head: string }> {
      assert.equal(await bob.client.call('Create', { Namespace: 'bob', Name: name }), true);
      await writeData(hub, `bob/${name}`, 'data', content);
      const head = await bob.client.call('Commit', {
        Namespace: 'bob',
        Name: name,
        Branch: '',
        Message: 'Nice Commit',
        Metadata: {},
      });
      const id = await bob.client.call('Lookup', { Namespace: 'bob', Name: name, Branch: '' });
      return { id, head };
    }

    test('CreateThenFork: admin forks bob’s dot into alice’s namespace; alice sees it with the parent recorded and its data', async () => {
      const parent = await bobsDot('forkparent', 'v1');
      await assert.rejects(
        bob.client.call('Fork', { MasterBranchID: parent.id, ForkNamespace: 'alice', ForkName: 'forked' }),
        /not admin/,
      );
      const forkId = await hub.admin.call('Fork', {
        MasterBranchID: parent.id,
        ForkNamespace: 'alice',
        ForkName: 'forked',
      });
      assert.notEqual(forkId, parent.id);
      assert.equal(await alice.client.call('Lookup', { Namespace: 'alice', Name: 'forked', Branch: '' }), forkId);

      const got = await alice.client.call('Get', forkId);
      assert.equal(got.ForkParentId, parent.id);
      assert.equal(got.ForkParentSnapshotId, parent.head);
      const inList = (await alice.client.call('List', null)).alice?.forked;
      assert.equal(inList?.ForkParentId, parent.id);
      assert.equal(inList?.ForkParentSnapshotId, parent.head);
      assert.ok(!(await listed(bob.client)).includes('alice/forked'), 'bob does not see alice’s fork');
      assert.ok(!(await listed(alice.client)).includes('bob/forkparent'), 'alice does not see bob’s dot');
      assert.equal(await readData(hub, 'alice/forked', 'data'), 'v1');

      // alice, with dm: lists it, reads its log, clones it to her own cluster
      await addUserRemote(aliceNode, 'alice_hub', hub, alice);
      await aliceNode.ok(['remote', 'switch', 'alice_hub']);
      assert.match(await aliceNode.ok(['list']), /forked/);
      await aliceNode.ok(['switch', 'alice/forked']);
      assert.match(await aliceNode.ok(['log']), /Forked from bob\/forkparent/);
      await aliceNode.ok(['remote', 'switch', 'local']);
      await aliceNode.ok(['clone', 'alice_hub', 'forked']);
      assert.equal(await readData(aliceNode, 'forked', 'data'), 'v1');
      assert.equal(await dotId(aliceNode, 'forked'), forkId);
      // the parent is untouched
      assert.deepEqual((await commitIds(hub, 'bob/forkparent')).at(-1), parent.head);
    });

    test('DeleteThenForkAgain: a deleted fork can be made again (a new dot); a deleted parent cannot be forked', async () => {
      const parent = await bobsDot('forkparent2', 'v1');
      const first = await hub.admin.call('Fork', {
        MasterBranchID: parent.id,
        ForkNamespace: 'alice',
        ForkName: 'forked2',
      });
      assert.equal(await readData(hub, 'alice/forked2', 'data'), 'v1');
      assert.equal(await alice.client.call('Delete', { Namespace: 'alice', Name: 'forked2' }), true);
      assert.ok(!(await listed(alice.client)).includes('alice/forked2'));

      // the parent moves on; the fork made again starts from its new head
      await writeData(hub, 'bob/forkparent2', 'data', 'v2');
      const head2 = await bob.client.call('Commit', {
        Namespace: 'bob',
        Name: 'forkparent2',
        Branch: '',
        Message: 'v2',
        Metadata: {},
      });
      const second = await hub.admin.call('Fork', {
        MasterBranchID: parent.id,
        ForkNamespace: 'alice',
        ForkName: 'forked2',
      });
      assert.notEqual(second, first);
      const got = await alice.client.call('Get', second);
      assert.equal(got.ForkParentId, parent.id);
      assert.equal(got.ForkParentSnapshotId, head2);
      assert.equal(await readData(hub, 'alice/forked2', 'data'), 'v2');
      // forking onto an existing name is refused
      await assert.rejects(
        hub.admin.call('Fork', { MasterBranchID: parent.id, ForkNamespace: 'alice', ForkName: 'forked2' }),
        /exists/,
      );

      // the parent deleted: no more forks of it; the fork keeps its data
      assert.equal(await bob.client.call('Delete', { Namespace: 'bob', Name: 'forkparent2' }), true);
      await assert.rejects(
        hub.admin.call('Fork', { MasterBranchID: parent.id, ForkNamespace: 'alice', ForkName: 'forked3' }),
        /No such/,
      );
      assert.equal(await readData(hub, 'alice/forked2', 'data'), 'v2');
      assert.ok((await listed(alice.client)).includes('alice/forked2'));
    });
  });
});
