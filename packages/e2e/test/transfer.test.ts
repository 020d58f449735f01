import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Cleanup, skipUnless } from '@dotmesh/testkit';
import {
  addUserRemote,
  branchesOf,
  type Cluster,
  commitIds,
  commitsOf,
  divergedBranches,
  dmLogIds,
  dotId,
  type Federation,
  listed,
  messagesOf,
  procure,
  readData,
  registerUser,
  startFederation,
  type TestUser,
  writeData,
} from './transfer-harness.ts';

/**
 * The original's TestTwoSingleNodeClusters (original-dotmesh.md §14) with the built `dm`
 * between two single-node clusters on two test hosts: cluster_0 (node1) and cluster_1
 * (node2), each with its own btrfs pool, the dm of each host having the remote `local` (its own
 * cluster, the initiator) and a remote for the other. Plus the two bugs of the original this
 * rebuild fixes: #444 (a push stuck on a divergence) and #600 (a stash without a usable common
 * commit).
 */
const skip = skipUnless(['root', 'netns', 'btrfs', 'losetup']);

describe('TestTwoSingleNodeClusters (ported)', { skip }, () => {
  const cleanup = new Cleanup();
  let fed: Federation;
  let node1: Cluster;
  let node2: Cluster;

  before(async () => {
    fed = await startFederation(cleanup, ['cluster_0', 'cluster_1']);
    [node1, node2] = fed.clusters as [Cluster, Cluster];
  });
  after(() => cleanup.run());
  beforeEach(async () => {
    await fed?.resetCurrentRemotes();
  });

  /** `dm init <dot>` (it becomes the current dot), a file, `dm commit -m <message>`. */
  async function makeDot(c: Cluster, dot: string, message = 'hello'): Promise<string> {
    await c.ok(['init', dot]);
    await writeData(c, dot, 'X', `X of ${dot} on ${c.name}`);
    return (await c.ok(['commit', '-m', message])).trim();
  }

  /** A file, then `dm commit -m <message>` on the current dot and branch of `c`. */
  async function commitFile(c: Cluster, dot: string, file: string, message: string): Promise<string> {
    await writeData(c, dot, file, `${file} on ${c.name}`);
    return (await c.ok(['commit', '-m', message])).trim();
  }

  /** 1 MiB of random bytes left uncommitted in `dot` (the original's `dd ... bs=1024 count=1024`). */
  async function dirty(c: Cluster, dot: string, file = 'Y', bytes = 1024 * 1024): Promise<void> {
    await writeFile(join(await procure(c, dot), file), randomBytes(bytes));
  }

  const DIVERGED_HINT = /--stash-on-divergence/;

  test('SpecifyPort: a remote with an explicit port is used; without the port no API answers', async () => {
    const noPort = await node1.fails(['remote', 'add', 'no_port_remote', `admin@${node2.host.address}`], {
      env: { DOTMESH_PASSWORD: node2.server.apiKey },
    });
    assert.match(noPort.output, /cannot reach a dotmesh-server at \S+ on ports 443, 80 or 32607/);
    assert.match(noPort.output, /hint: check that dotmesh-server runs on \S+ .* add --no-check/, 'advice for a remote host');
    assert.doesNotMatch(await node1.ok(['remote']), /no_port_remote/);
    await node1.ok(['remote', 'add', 'funny_port_remote', node2.target()], { env: { DOTMESH_PASSWORD: node2.server.apiKey } });
    assert.match(
      await node1.ok(['remote', '-v']),
      new RegExp(`funny_port_remote\\thttp://${node2.target().replaceAll('.', '\\.')}\\n`),
    );
    await makeDot(node1, 'specport');
    const out = await node1.ok(['push', 'funny_port_remote']);
    assert.match(out, /Pushing admin\/specport to funny_port_remote:admin\/specport/);
    assert.match(out, /Done!/);
    assert.deepEqual(await commitIds(node2, 'specport'), await commitIds(node1, 'specport'));
    assert.equal(await readData(node2, 'specport', 'X'), 'X of specport on cluster_0');
  });

  test('PushCommitBranchExtantBase: push, incremental push, then a branch whose base is there', async () => {
    const dot = 'extantbase';
    await makeDot(node2, dot, 'hello');
    const first = await node2.ok(['push', 'cluster_0']);
    assert.match(first, /Pushing admin\/extantbase to cluster_0:admin\/extantbase/);
    assert.match(first, /Done!/);
    await node1.ok(['switch', dot]);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, dot));
    assert.match(await node1.ok(['log']), /\n {4}hello\n/);
    assert.equal(await readData(node1, dot, 'X'), `X of ${dot} on cluster_1`);

    // incremental push
    await commitFile(node2, dot, 'Y', 'again');
    await node2.ok(['push', 'cluster_0']);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, dot));
    assert.match(await node1.ok(['log']), /\n {4}again\n/);
    assert.equal(await readData(node1, dot, 'Y'), 'Y on cluster_1');

    // a branch whose base (master) the receiver already has
    await node2.ok(['checkout', '-b', 'newbranch']);
    await commitFile(node2, `${dot}@newbranch`, 'Z', 'branchy');
    await node2.ok(['push', 'cluster_0']);
    assert.deepEqual(await branchesOf(node1, dot), ['newbranch']);
    await node1.ok(['checkout', 'newbranch']);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, `${dot}@newbranch`));
    assert.deepEqual(await messagesOf(node1, `${dot}@newbranch`), ['Initial commit', 'hello', 'again', 'branchy']);
    assert.equal(await readData(node1, `${dot}@newbranch`, 'Z'), 'Z on cluster_1');
    // master is untouched by the branch
    assert.deepEqual(await commitIds(node1, dot), await commitIds(node2, dot));
    await node1.ok(['checkout', 'master']);
    await assert.rejects(readData(node1, dot, 'Z'), /ENOENT/);
    assert.equal(await readData(node1, dot, 'Y'), 'Y on cluster_1');
  });

  test('PushCommitBranchNoExtantBase: a branch of a branch of a branch travels with its origins', async () => {
    const dot = 'noextantbase';
    await makeDot(node2, dot, 'master');
    await node2.ok(['checkout', '-b', 'newbranch']);
    await commitFile(node2, `${dot}@newbranch`, 'B1', 'branchy');
    await node2.ok(['checkout', '-b', 'newbranch2']);
    await commitFile(node2, `${dot}@newbranch2`, 'B2', 'branchy2');
    await node2.ok(['checkout', '-b', 'newbranch3']);
    await commitFile(node2, `${dot}@newbranch3`, 'B3', 'branchy3');
    await node2.ok(['push', 'cluster_0']);

    await node1.ok(['switch', dot]);
    await node1.ok(['checkout', 'newbranch3']);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, `${dot}@newbranch3`));
    assert.deepEqual(await messagesOf(node1, `${dot}@newbranch3`), [
      'Initial commit',
      'master',
      'branchy',
      'branchy2',
      'branchy3',
    ]);
    for (const f of ['X', 'B1', 'B2', 'B3']) {
      assert.equal(await readData(node1, `${dot}@newbranch3`, f), f === 'X' ? `X of ${dot} on cluster_1` : `${f} on cluster_1`);
    }
    // the origin chain arrived as the same branches, and master up to where they start
    assert.deepEqual(await branchesOf(node1, dot), ['newbranch', 'newbranch2', 'newbranch3']);
    assert.deepEqual(await commitIds(node1, `${dot}@newbranch`), await commitIds(node2, `${dot}@newbranch`));
    assert.deepEqual(await commitIds(node1, `${dot}@newbranch2`), await commitIds(node2, `${dot}@newbranch2`));
    assert.deepEqual(await commitIds(node1, dot), await commitIds(node2, dot));
    // the base is complete: pushing master now has nothing to send
    await node2.ok(['push', 'cluster_0', dot, 'master']);
    assert.deepEqual(await commitIds(node1, dot), await commitIds(node2, dot));
  });

  test('DirtyDetected: uncommitted changes on the receiver refuse a push, and locally a pull', async () => {
    const dot = 'dirtydetected';
    await makeDot(node2, dot);
    await node2.ok(['push', 'cluster_0']);
    await node1.ok(['switch', dot]);
    assert.match(await node1.ok(['log']), /hello/);
    const before1 = await commitIds(node1, dot);

    await dirty(node1, dot);
    await commitFile(node2, dot, 'Z', 'again');
    const push = await node2.fails(['push', 'cluster_0']);
    assert.match(push.output, /uncommitted/);
    assert.match(
      push.output,
      /Aborting because there are [\d.]+ MiB of uncommitted changes on volume where data would be written\. Use 'dm reset' to roll back\./,
    );
    assert.deepEqual(await commitIds(node1, dot), before1, 'nothing arrived');
    assert.equal((await readData(node1, dot, 'Y')).length > 0, true, 'the dirty data is still there');

    // the same dot pulled into node1, dirty there
    const pull = await node1.fails(['pull', 'cluster_1', dot]);
    assert.match(pull.output, /uncommitted changes on volume where data would be written/);
    assert.deepEqual(await commitIds(node1, dot), before1);

    // as the message says: reset, and the pull goes through
    await node1.ok(['reset', '--hard', 'HEAD']);
    await assert.rejects(readData(node1, dot, 'Y'), /ENOENT/);
    await node1.ok(['pull', 'cluster_1', dot]);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, dot));
    assert.equal(await readData(node1, dot, 'Z'), 'Z on cluster_1');
  });

  test('DirtyImmediate: a change written just before the push is detected', async () => {
    const dot = 'dirtyimmediate';
    await makeDot(node2, dot);
    await node2.ok(['push', 'cluster_0']);
    await node1.ok(['switch', dot]);
    assert.match(await node1.ok(['log']), /hello/);
    await commitFile(node2, dot, 'Z', 'again');
    const before1 = await commitIds(node1, dot);
    // a few bytes, and the push at once (no waiting for any poller)
    await writeData(node1, dot, 'Y', 'tiny');
    const r = await node2.fails(['push', 'cluster_0']);
    assert.match(
      r.output,
      /uncommitted changes on volume where data would be written|has been modified\nsince most recent snapshot/,
    );
    assert.deepEqual(await commitIds(node1, dot), before1);
    assert.equal(await readData(node1, dot, 'Y'), 'tiny');
  });

  test('Diverged: a push refused, naming the common commit and both sides’ extra commits', async () => {
    const dot = 'diverged';
    const hello = await makeDot(node2, dot);
    await node2.ok(['push', 'cluster_0']);
    await node1.ok(['switch', dot]);
    const n1 = await commitFile(node1, dot, 'N1', 'node1 commit');
    const n2 = await commitFile(node2, dot, 'N2', 'node2 commit');
    const before1 = await commitIds(node1, dot);
    const before2 = await commitIds(node2, dot);
    const r = await node2.fails(['push', 'cluster_0']);
    assert.match(r.output, /diverged/);
    assert.ok(r.output.includes(hello), `names the common commit ${hello}: ${r.output}`);
    assert.ok(r.output.includes(n1) && r.output.includes(n2), `names both extra commits: ${r.output}`);
    assert.match(r.output, DIVERGED_HINT);
    assert.equal(r.code, 9, 'a diverged transfer exits with the status of DIVERGED');
    assert.match(r.stderr, new RegExp(`\ncommon commit: ${hello}\n`));
    assert.match(r.stderr, new RegExp(`\nonly on \\S+ \\(this server\\): ${n2}\n`), 'the sender (node2) has n2');
    assert.match(r.stderr, new RegExp(`\nonly on \\S+ \\(peer [^)]+\\): ${n1}\n`), 'the receiver (node1) has n1');
    // --json: the error object with its code, hint and the data to act on.
    const json = await node2.fails(['--json', 'push', 'cluster_0']);
    assert.equal(json.code, 9);
    assert.equal(json.stdout, '');
    const { error } = JSON.parse(json.stderr.trim().split('\n').at(-1)!);
    assert.equal(error.code, 'DIVERGED');
    assert.match(error.hint, DIVERGED_HINT);
    assert.equal(error.data.common, hello);
    assert.deepEqual([error.data.senderExtra, error.data.receiverExtra], [[n2], [n1]]);
    assert.deepEqual([error.data.senderExtraCount, error.data.receiverExtraCount], [1, 1]);
    assert.equal(typeof error.data.transferId, 'string');
    assert.deepEqual(await commitIds(node1, dot), before1);
    assert.deepEqual(await commitIds(node2, dot), before2);
    assert.deepEqual(await branchesOf(node1, dot), []);
  });

  test('PushStashDiverged: the receiver’s diverged commits move to master-DIVERGED-…; nothing is lost', async () => {
    const dot = 'pushstashdiverged';
    await makeDot(node2, dot);
    await node2.ok(['push', 'cluster_0']);
    await node1.ok(['switch', dot]);
    await commitFile(node1, dot, 'N1', 'node1 commit');
    await commitFile(node2, dot, 'N2', 'node2 commit');
    const before1 = await commitIds(node1, dot);
    const before2 = await commitIds(node2, dot);

    await node2.ok(['push', '--stash-on-divergence', 'cluster_0']);
    assert.match(await node1.ok(['branch']), /master-DIVERGED-/);
    const stashed = divergedBranches(await branchesOf(node1, dot));
    assert.equal(stashed.length, 1, `one stash branch: ${await branchesOf(node1, dot)}`);
    assert.deepEqual(await commitIds(node1, dot), before2, 'the receiver master is the sender’s');
    assert.deepEqual(await commitIds(node1, `${dot}@${stashed[0]}`), before1, 'its own commits are on the stash branch');
    assert.deepEqual(await commitIds(node2, dot), before2, 'the sender is unchanged');
    assert.equal(await readData(node1, dot, 'N2'), 'N2 on cluster_1');
    await assert.rejects(readData(node1, dot, 'N1'), /ENOENT/);
    assert.equal(await readData(node1, `${dot}@${stashed[0]}`, 'N1'), 'N1 on cluster_0');
    // and the two sides are in step: a plain push has nothing left to do
    await node2.ok(['push', 'cluster_0']);
    assert.deepEqual(await commitIds(node1, dot), before2);
  });

  test('PushStashToSnapsAhead: a receiver ahead refuses a plain push; stashing puts its extra commits aside', async () => {
    const dot = 'stashahead';
    await makeDot(node2, dot);
    await node2.ok(['push', 'cluster_0']);
    await node1.ok(['switch', dot]);
    const extra = await commitFile(node1, dot, 'AHEAD', 'node1 ahead');
    const before1 = await commitIds(node1, dot);
    const before2 = await commitIds(node2, dot);

    const r = await node2.fails(['push', 'cluster_0']);
    assert.match(r.output, /ahead/);
    assert.ok(r.output.includes(extra), `names the receiver's extra commit: ${r.output}`);
    assert.deepEqual(await commitIds(node1, dot), before1);

    await node2.ok(['push', '--stash-on-divergence', 'cluster_0']);
    const stashed = divergedBranches(await branchesOf(node1, dot));
    assert.equal(stashed.length, 1);
    assert.deepEqual(await commitIds(node1, dot), before2);
    assert.deepEqual(await commitIds(node1, `${dot}@${stashed[0]}`), before1);
    await assert.rejects(readData(node1, dot, 'AHEAD'), /ENOENT/);
    assert.equal(await readData(node1, `${dot}@${stashed[0]}`, 'AHEAD'), 'AHEAD on cluster_0');
  });

  test('ResetAfterPushThenPush: a reset on either side never wedges later pushes', async () => {
    const dot = 'resetpush';
    await makeDot(node2, dot);
    await node2.ok(['push', 'cluster_0']);
    await node1.ok(['switch', dot]);
    assert.match(await node1.ok(['log']), /hello/);

    // The original: the receiver commits, resets that commit away, then a push goes through.
    await commitFile(node1, dot, 'N1', 'node1 commit');
    const node2Commit = await commitFile(node2, dot, 'N2', 'node2 commit');
    await node1.ok(['reset', '--hard', 'HEAD^']);
    assert.doesNotMatch(await node1.ok(['log']), /node1 commit/);
    await assert.rejects(readData(node1, dot, 'N1'), /ENOENT/);
    await node2.ok(['push', 'cluster_0']);
    assert.match(await node1.ok(['log']), /node2 commit/);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, dot));

    // The sender resets a commit it had pushed and commits again: the push is refused, then
    // stashing completes it, keeping the receiver's copy of the reset commit.
    await node2.ok(['reset', '--hard', 'HEAD^']);
    assert.doesNotMatch(await node2.ok(['log']), /node2 commit/);
    await commitFile(node2, dot, 'R', 'node2 after reset');
    const before1 = await commitIds(node1, dot);
    const r = await node2.fails(['push', 'cluster_0']);
    assert.match(r.output, /diverged/);
    assert.deepEqual(await commitIds(node1, dot), before1);
    await node2.ok(['push', '--stash-on-divergence', 'cluster_0']);
    assert.deepEqual(await commitIds(node1, dot), await commitIds(node2, dot));
    const stashed = divergedBranches(await branchesOf(node1, dot));
    assert.equal(stashed.length, 1);
    assert.deepEqual(await commitIds(node1, `${dot}@${stashed[0]}`), before1);
    assert.ok(before1.includes(node2Commit));
    assert.equal(await readData(node1, dot, 'R'), 'R on cluster_1');
    await assert.rejects(readData(node1, dot, 'N2'), /ENOENT/);

    // and plain pushes work again afterwards
    await commitFile(node2, dot, 'S', 'node2 later');
    await node2.ok(['push', 'cluster_0']);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, dot));
  });

  describe('users on the receiving cluster', () => {
    let carol: TestUser;
    let dave: TestUser;
    before(async () => {
      carol = await registerUser(node1, 'carol');
      dave = await registerUser(node1, 'dave');
      await addUserRemote(node2, 'carol_on_0', node1, carol);
      await addUserRemote(node2, 'dave_on_0', node1, dave);
    });

    test('PushToAuthorizedUser: a push as a user lands in that user’s namespace, seen by that user only', async () => {
      const dot = 'carolsdot';
      await makeDot(node2, dot);
      const out = await node2.ok(['push', 'carol_on_0']);
      assert.match(out, /Pushing admin\/carolsdot to carol_on_0:carol\/carolsdot/);
      assert.deepEqual(await commitIds(node1, `carol/${dot}`), await commitIds(node2, dot));
      assert.ok((await listed(carol.client)).includes(`carol/${dot}`));
      assert.ok(!(await listed(dave.client)).includes(`carol/${dot}`), 'dave does not see carol’s dot');
      assert.ok((await listed(node1.admin)).includes(`carol/${dot}`));
      // incremental, as carol
      await commitFile(node2, dot, 'Y', 'again');
      await node2.ok(['push', 'carol_on_0']);
      assert.deepEqual(await commitIds(node1, `carol/${dot}`), await commitIds(node2, dot));
    });

    test('NoPushToUnauthorizedUser: no push into another user’s namespace or dot', async () => {
      const dot = 'notcarols';
      await makeDot(node2, dot);
      const r = await node2.fails(['push', 'carol_on_0', dot, '--remote-name', 'dave/notcarols']);
      assert.match(r.output, /User is not an administrator for namespace dave, so cannot create volumes/);
      assert.ok(!(await listed(node1.admin)).some((d) => d.endsWith('/notcarols')), 'nothing created');

      // dave's existing dot: carol may not push into it either
      const davesDot = 'davesdot';
      await makeDot(node2, davesDot);
      await node2.ok(['push', 'dave_on_0', davesDot]);
      const daves = await commitIds(node1, `dave/${davesDot}`);
      await commitFile(node2, davesDot, 'C', 'by carol');
      await node2.fails(['push', 'carol_on_0', davesDot, '--remote-name', `dave/${davesDot}`]);
      assert.deepEqual(await commitIds(node1, `dave/${davesDot}`), daves, 'dave’s dot is unchanged');
      // nor pull from it
      await node2.ok(['checkout', 'master']);
      const pull = await node2.fails(['pull', 'carol_on_0', davesDot, '--remote-name', `dave/${davesDot}`]);
      assert.doesNotMatch(pull.output, /Done!/);
    });

    test('PushToCollaboratorVolume: once added as a collaborator, a user pushes to and pulls from the owner’s dot', async () => {
      const dot = 'shared';
      await makeDot(node2, dot);
      await node2.ok(['push', 'dave_on_0']);
      await commitFile(node2, dot, 'C', 'by carol');
      await node2.fails(['push', 'carol_on_0', dot, '--remote-name', `dave/${dot}`]);
      assert.notDeepEqual(await commitIds(node1, `dave/${dot}`), await commitIds(node2, dot));

      const id = await dave.client.call('Lookup', { Namespace: 'dave', Name: dot, Branch: '' });
      assert.equal(await dave.client.call('AddCollaborator', { MasterBranchID: id, Collaborator: 'carol' }), true);
      assert.ok((await listed(carol.client)).includes(`dave/${dot}`));
      await node2.ok(['push', 'carol_on_0', dot, '--remote-name', `dave/${dot}`]);
      assert.deepEqual(await commitIds(node1, `dave/${dot}`), await commitIds(node2, dot));
      assert.equal(await readData(node1, `dave/${dot}`, 'C'), 'C on cluster_1');
      // dave's own dot stays his: carol's push did not change its owner
      assert.ok((await listed(dave.client)).includes(`dave/${dot}`));
      // carol can pull what dave adds
      await writeData(node1, `dave/${dot}`, 'D', 'by dave');
      await dave.client.call('Commit', { Namespace: 'dave', Name: dot, Branch: '', Message: 'by dave', Metadata: {} });
      await node2.ok(['pull', 'carol_on_0', dot, '--remote-name', `dave/${dot}`]);
      assert.deepEqual(await commitIds(node2, dot), await commitIds(node1, `dave/${dot}`));
      assert.equal(await readData(node2, dot, 'D'), 'by dave');
    });
  });

  test('Clone, then pull, then pull a branch', async () => {
    const dot = 'cloned';
    await makeDot(node2, dot);
    await node1.ok(['init', 'cloneholder']); // the current dot on node1, which a clone leaves alone
    const out = await node1.ok(['clone', 'cluster_1', dot]);
    assert.match(out, /Pulling admin\/cloned from cluster_1:admin\/cloned/);
    assert.match(out, /Done!/);
    assert.match(await node1.ok(['list']), /\* cloneholder/);
    await node1.ok(['switch', dot]);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, dot));
    assert.match(await node1.ok(['log']), /hello/);
    assert.equal(await readData(node1, dot, 'X'), `X of ${dot} on cluster_1`);
    assert.match(await node1.ok(['dot', 'show', '-H', dot]), /^defaultUpstreamDot\tcluster_1\tadmin\/cloned$/m);

    // incremental pull
    await commitFile(node2, dot, 'Y', 'again');
    await node1.ok(['pull', 'cluster_1', dot]);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, dot));
    assert.equal(await readData(node1, dot, 'Y'), 'Y on cluster_1');

    // a branch, its base being there
    await node2.ok(['checkout', '-b', 'newbranch']);
    await commitFile(node2, `${dot}@newbranch`, 'Z', 'branchy');
    await node1.ok(['pull', 'cluster_1', dot, 'newbranch']);
    await node1.ok(['checkout', 'newbranch']);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, `${dot}@newbranch`));
    assert.match(await node1.ok(['log']), /branchy/);
    assert.equal(await readData(node1, `${dot}@newbranch`, 'Z'), 'Z on cluster_1');
    assert.deepEqual(await branchesOf(node1, dot), ['newbranch']);
  });

  test('CloneIdClash: a local dot of the same name but another id is never merged', async () => {
    const dot = 'clash';
    await makeDot(node1, dot, 'node1 clash');
    await makeDot(node2, dot, 'node2 clash');
    const id1 = await dotId(node1, dot);
    const id2 = await dotId(node2, dot);
    assert.notEqual(id1, id2);
    const before1 = await commitIds(node1, dot);
    const before2 = await commitIds(node2, dot);
    const clone = await node1.fails(['clone', 'cluster_1', dot]);
    assert.match(clone.output, /Cannot reconcile filesystems with different ids/);
    assert.ok(clone.output.includes(id1) && clone.output.includes(id2), clone.output);
    const push = await node1.fails(['push', 'cluster_1', dot]);
    assert.match(push.output, /Cannot reconcile filesystems with different ids/);
    assert.deepEqual(await commitIds(node1, dot), before1);
    assert.deepEqual(await commitIds(node2, dot), before2);
    // under another name the clone works
    await node1.ok(['clone', 'cluster_1', dot, '--local-name', 'clash-from-1']);
    assert.deepEqual(await commitIds(node1, 'clash-from-1'), before2);
    assert.equal(await dotId(node1, 'clash-from-1'), id2);
  });

  test('CloneStashDiverged: re-cloning over diverged local commits stashes them', async () => {
    const dot = 'clonediverged';
    await makeDot(node1, dot);
    await node2.ok(['clone', 'cluster_0', dot]);
    await node2.ok(['switch', dot]);
    await commitFile(node2, dot, 'L1', 'hello');
    await commitFile(node2, dot, 'L2', 'hello2');
    await commitFile(node1, dot, 'R1', 'remote more');
    const local = await commitIds(node2, dot);
    const remote = await commitIds(node1, dot);

    const plain = await node2.fails(['clone', 'cluster_0', dot]);
    assert.match(plain.output, /diverged/);
    assert.deepEqual(await commitIds(node2, dot), local);

    await node2.ok(['clone', '--stash-on-divergence', 'cluster_0', dot]);
    assert.match(await node2.ok(['branch']), /master-DIVERGED-/);
    const stashed = divergedBranches(await branchesOf(node2, dot));
    assert.equal(stashed.length, 1);
    assert.deepEqual(await commitIds(node2, dot), remote);
    assert.deepEqual(await commitIds(node2, `${dot}@${stashed[0]}`), local);
    assert.equal(await readData(node2, dot, 'R1'), 'R1 on cluster_0');
    assert.equal(await readData(node2, `${dot}@${stashed[0]}`, 'L2'), 'L2 on cluster_1');
    assert.deepEqual(await commitIds(node1, dot), remote, 'the remote is unchanged');
  });

  test('CloneStashToSnaps: re-cloning when the local copy is ahead stashes its extra commits', async () => {
    const dot = 'clonestashsnaps';
    await makeDot(node1, dot);
    await node2.ok(['clone', 'cluster_0', dot]);
    await node2.ok(['switch', dot]);
    await commitFile(node2, dot, 'L1', 'hello');
    const local = await commitIds(node2, dot);
    const remote = await commitIds(node1, dot);

    const plain = await node2.fails(['clone', 'cluster_0', dot]);
    assert.match(plain.output, /ahead/);
    assert.deepEqual(await commitIds(node2, dot), local);

    await node2.ok(['clone', '--stash-on-divergence', 'cluster_0', dot]);
    assert.match(await node2.ok(['branch']), /master-DIVERGED-/);
    const stashed = divergedBranches(await branchesOf(node2, dot));
    assert.deepEqual(await commitIds(node2, dot), remote);
    assert.deepEqual(await commitIds(node2, `${dot}@${stashed[0]}`), local);
  });

  test('CloneStashDirty: uncommitted local data refuses a clone; stashing commits it first and keeps it', async () => {
    const dot = 'clonestashdirty';
    await makeDot(node1, dot);
    await node2.ok(['clone', 'cluster_0', dot]);
    await node2.ok(['switch', dot]);
    const local = await commitIds(node2, dot);
    await writeData(node2, dot, 'DIRTY', 'uncommitted on cluster_1');
    await commitFile(node1, dot, 'R1', 'remote more');
    const remote = await commitIds(node1, dot);

    const plain = await node2.fails(['clone', 'cluster_0', dot]);
    assert.match(plain.output, /uncommitted/);
    assert.deepEqual(await commitIds(node2, dot), local);
    assert.equal(await readData(node2, dot, 'DIRTY'), 'uncommitted on cluster_1');

    await node2.ok(['clone', '--stash-on-divergence', 'cluster_0', dot]);
    assert.deepEqual(await commitIds(node2, dot), remote);
    assert.equal(await readData(node2, dot, 'R1'), 'R1 on cluster_0');
    await assert.rejects(readData(node2, dot, 'DIRTY'), /ENOENT/);
    const stashed = divergedBranches(await branchesOf(node2, dot));
    assert.equal(stashed.length, 1, `the dirty data was committed and stashed: ${await branchesOf(node2, dot)}`);
    const kept = await commitIds(node2, `${dot}@${stashed[0]}`);
    assert.deepEqual(kept.slice(0, local.length), local);
    assert.equal(kept.length, local.length + 1, 'one commit of the dirty data');
    assert.equal(await readData(node2, `${dot}@${stashed[0]}`, 'DIRTY'), 'uncommitted on cluster_1');
  });

  test('Bug74MissingMetadata: every commit and its metadata survive push and pull', async () => {
    const dot = 'bug74';
    await node1.ok(['init', dot]);
    await writeData(node1, dot, 'X', 'x');
    await node1.ok(['commit', '-m', 'hello', '-d', 'apples=green', '-d', 'empty=']);
    await writeData(node1, dot, 'Y', 'y');
    await node1.ok(['commit', '-m', 'again', '-d', 'colour=blue']);
    await node1.ok(['push', 'cluster_1', dot]);

    assert.deepEqual(await commitsOf(node2, dot), await commitsOf(node1, dot));
    await node2.ok(['switch', dot]);
    const log = await node2.ok(['log']);
    for (const line of ['apples: green', 'colour: blue', '    hello', '    again']) assert.ok(log.includes(`${line}\n`), log);
    assert.match(log, /^empty: ?$/m);

    await writeData(node2, dot, 'Z', 'z');
    await node2.ok(['commit', '-m', 'from cluster_1', '-d', 'pulled=yes']);
    await node1.ok(['pull', 'cluster_1', dot]);
    const back = await commitsOf(node1, dot);
    assert.deepEqual(back, await commitsOf(node2, dot));
    assert.equal(back.at(-1)?.Metadata.pulled, 'yes');
    assert.equal(back.at(-1)?.Metadata.author, 'admin');
  });

  test('VolumeNameValidityChecking: invalid names are refused before anything moves', async () => {
    const init = await node1.fails(['init', '@']);
    assert.match(init.output, /invalid dot name/);
    const dot = 'validname';
    await makeDot(node2, dot);
    const clone = await node1.fails(['clone', 'cluster_1', dot, '--local-name', '@']);
    assert.match(clone.output, /invalid dot name/);
    const pull = await node1.fails(['pull', 'cluster_1', '@', '--remote-name', dot]);
    assert.match(pull.output, /invalid dot name/);
    const push = await node2.fails(['push', 'cluster_0', dot, '--remote-name', '@']);
    assert.match(push.output, /invalid dot name/);
    for (const r of [init, clone, pull, push]) assert.equal(r.code, 2, `a usage error: ${r.output}`);
    assert.ok(!(await listed(node1.admin)).some((d) => d.endsWith(`/${dot}`)), 'nothing arrived on cluster_0');
  });

  test('Bug444: a push after the receiver fell behind and diverged never wedges', async () => {
    const dot = 'bug444';
    const hello = await makeDot(node2, dot);
    await node2.ok(['push', 'cluster_0']);
    // the receiver falls 6 commits behind, then gets a commit of its own
    for (let i = 1; i <= 6; i++) await commitFile(node2, dot, `S${i}`, `sender ${i}`);
    await node1.ok(['switch', dot]);
    await commitFile(node1, dot, 'OWN', 'receiver own');
    const before1 = await commitIds(node1, dot);

    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await node2.fails(['push', 'cluster_0']);
      assert.match(r.output, /diverged/);
      assert.ok(r.output.includes(hello), `the common commit is named: ${r.output}`);
      assert.deepEqual(await commitIds(node1, dot), before1, 'a refused push leaves the receiver as it was');
    }
    await node2.ok(['push', '--stash-on-divergence', 'cluster_0']);
    assert.deepEqual(await commitIds(node1, dot), await commitIds(node2, dot));
    const stashed = divergedBranches(await branchesOf(node1, dot));
    assert.equal(stashed.length, 1);
    assert.deepEqual(await commitIds(node1, `${dot}@${stashed[0]}`), before1);
    assert.equal(await readData(node1, dot, 'S6'), 'S6 on cluster_1');

    // later plain pushes and pulls, both ways
    await commitFile(node2, dot, 'S7', 'sender 7');
    await node2.ok(['push', 'cluster_0']);
    assert.deepEqual(await dmLogIds(node1), await commitIds(node2, dot));
    await commitFile(node1, dot, 'R8', 'receiver 8');
    await node2.ok(['switch', dot]);
    await node2.ok(['pull', 'cluster_0']);
    assert.deepEqual(await commitIds(node2, dot), await commitIds(node1, dot));
    assert.equal(await readData(node2, dot, 'R8'), 'R8 on cluster_0');
  });

  /*
   * Bug #600: the original's --stash-on-divergence failed with "no common snapshots". Through
   * the public API two dots with the same id always share at least their initial commit: an id
   * is only shared by transferring the dot, every history starts with that commit, and a reset
   * cannot go before it. The nearest reachable cases: (a) the only common commit is the initial
   * one, every later commit on each side diverging; (b) a branch that shares none of its own
   * commits, the latest common commit being its origin on master; (c) a branch made
   * independently, with the same name, on both sides.
   */
  test('Bug600: stashing when the only common commit is the initial one, or lies before the branch', async () => {
    const dot = 'bug600';
    await node2.ok(['init', dot]);
    await node2.ok(['push', 'cluster_0']);
    const initial = await commitIds(node2, dot);
    assert.equal(initial.length, 1);
    await node1.ok(['switch', dot]);
    await commitFile(node1, dot, 'N1', 'node1 one');
    await commitFile(node1, dot, 'N2', 'node1 two');
    await commitFile(node2, dot, 'S1', 'node2 one');
    const before1 = await commitIds(node1, dot);

    // (a)
    const r = await node2.fails(['push', 'cluster_0']);
    assert.match(r.output, /diverged/);
    assert.ok(r.output.includes(initial[0]!), r.output);
    await node2.ok(['push', '--stash-on-divergence', 'cluster_0']);
    assert.deepEqual(await commitIds(node1, dot), await commitIds(node2, dot));
    const stashed = divergedBranches(await branchesOf(node1, dot));
    assert.equal(stashed.length, 1);
    assert.deepEqual(await commitIds(node1, `${dot}@${stashed[0]}`), before1);
    assert.equal(await readData(node1, `${dot}@${stashed[0]}`, 'N2'), 'N2 on cluster_0');

    // (b) a branch pushed before it had commits of its own; then both sides commit on it
    await node2.ok(['checkout', '-b', 'feature']);
    await node2.ok(['push', 'cluster_0']);
    assert.deepEqual(await commitIds(node1, `${dot}@feature`), await commitIds(node2, `${dot}@feature`));
    await node1.ok(['checkout', 'feature']);
    await commitFile(node1, `${dot}@feature`, 'F1', 'node1 feature');
    await commitFile(node2, `${dot}@feature`, 'F2', 'node2 feature');
    const feature1 = await commitIds(node1, `${dot}@feature`);
    const plain = await node2.fails(['push', 'cluster_0']);
    assert.match(plain.output, /diverged/);
    assert.deepEqual(await commitIds(node1, `${dot}@feature`), feature1);
    await node2.ok(['push', '--stash-on-divergence', 'cluster_0']);
    assert.deepEqual(await commitIds(node1, `${dot}@feature`), await commitIds(node2, `${dot}@feature`));
    assert.equal(await readData(node1, `${dot}@feature`, 'F2'), 'F2 on cluster_1');
    await assert.rejects(readData(node1, `${dot}@feature`, 'F1'), /ENOENT/);
    const featureStash = divergedBranches(await branchesOf(node1, dot), 'feature');
    assert.equal(featureStash.length, 1, `${await branchesOf(node1, dot)}`);
    assert.deepEqual(await commitIds(node1, `${dot}@${featureStash[0]}`), feature1);
    assert.equal(await readData(node1, `${dot}@${featureStash[0]}`, 'F1'), 'F1 on cluster_0');
    // master was not touched by the branch's stash
    assert.deepEqual(await commitIds(node1, dot), await commitIds(node2, dot));
  });

  test('Bug600: a same-named branch made independently on each side is refused plainly, stashed with --stash-on-divergence', async () => {
    const dot = 'bug600b';
    await makeDot(node2, dot);
    await node2.ok(['push', 'cluster_0']);
    await node1.ok(['switch', dot]);
    await node1.ok(['checkout', '-b', 'feature']);
    await commitFile(node1, `${dot}@feature`, 'F1', 'node1 feature');
    await node2.ok(['checkout', '-b', 'feature']);
    await commitFile(node2, `${dot}@feature`, 'F2', 'node2 feature');
    const feature1 = await commitIds(node1, `${dot}@feature`);
    const master1 = await commitIds(node1, dot);

    const plain = await node2.fails(['push', 'cluster_0']);
    assert.match(plain.output, /made independently on each side.*--stash-on-divergence/s);
    assert.deepEqual(await commitIds(node1, `${dot}@feature`), feature1, 'the receiver branch is unchanged');
    assert.deepEqual(await branchesOf(node1, dot), ['feature']);

    // Stashing moves the receiver's branch aside (as the original's StashAfter renamed the live
    // branch to -DIVERGED-) and completes: dm can neither rename nor delete a branch, so
    // without this the sender's branch could never be pushed to this dot again.
    await node2.ok(['push', '--stash-on-divergence', 'cluster_0']);
    assert.deepEqual(await commitIds(node1, `${dot}@feature`), await commitIds(node2, `${dot}@feature`));
    assert.equal(await readData(node1, `${dot}@feature`, 'F2'), 'F2 on cluster_1');
    const featureStash = divergedBranches(await branchesOf(node1, dot), 'feature');
    assert.equal(featureStash.length, 1, `${await branchesOf(node1, dot)}`);
    assert.deepEqual(await commitIds(node1, `${dot}@${featureStash[0]}`), feature1);
    assert.equal(await readData(node1, `${dot}@${featureStash[0]}`, 'F1'), 'F1 on cluster_0');
    assert.deepEqual(await commitIds(node1, dot), master1);
  });
});
