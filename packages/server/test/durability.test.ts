import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KEYS } from '../src/cluster/store-keys.ts';
import { createDotWithBranch, type InProcessServer, rejectsCode, startInProcess } from './in-process.ts';

/**
 * GetDurability / SetDurability and a Commit on a single node (in-process, in-memory driver
 * and store): the setting lives in the store record `filesystems/durability/<dotId>`, a
 * branch's wins over its dot's, and a `sync` commit with no other node to hold it answers
 * NOT_REPLICATED while the commit stays. Replication itself: e2e cluster-durability.test.ts.
 */
describe('durability of dots and branches', () => {
  let s: InProcessServer;
  let ids: { dotId: string; branchId: string };
  const get = (branch: string) => s.admin.call('GetDurability', { Namespace: 'admin', Name: 'dur', Branch: branch });
  const set = (o: { branch?: string; durability: string }) =>
    s.admin.call('SetDurability', {
      Namespace: 'admin',
      Name: 'dur',
      Branch: o.branch ?? '',
      WholeDot: o.branch === undefined,
      Durability: o.durability,
    });
  const stored = async () => {
    const kv = await s.store.get(KEYS.durability(ids.dotId));
    return kv ? JSON.parse(kv.value) : undefined;
  };

  before(async () => {
    s = await startInProcess();
    ids = await createDotWithBranch(s.admin, 'dur', 'b1');
  });
  after(async () => s.close());

  test('a single node: async by default, nothing stored', async () => {
    assert.deepEqual(await get(''), { Durability: 'async', Source: 'cluster', DotDurability: '', BranchDurability: '' });
    assert.equal(await stored(), undefined);
    assert.match(
      await s.admin.call('Commit', { Namespace: 'admin', Name: 'dur', Branch: '', Message: 'async', Metadata: {} }),
      /\S/,
    );
  });

  test('set on the dot, then on a branch: the branch wins, the store record says both', async () => {
    assert.deepEqual(await set({ durability: 'sync' }), {
      Durability: 'sync',
      Source: 'dot',
      DotDurability: 'sync',
      BranchDurability: '',
    });
    assert.equal((await get('b1')).Durability, 'sync', 'b1 follows its dot');
    assert.deepEqual(await set({ branch: 'b1', durability: 'async' }), {
      Durability: 'async',
      Source: 'branch',
      DotDurability: 'sync',
      BranchDurability: 'async',
    });
    assert.deepEqual(await stored(), { dot_id: ids.dotId, default: 'sync', branches: { [ids.branchId]: 'async' } });
  });

  test('a sync commit with no other node: NOT_REPLICATED, and the commit is kept', async () => {
    const before = await s.admin.call('Commits', { Namespace: 'admin', Name: 'dur', Branch: '' });
    await rejectsCode(
      s.admin.call('Commit', { Namespace: 'admin', Name: 'dur', Branch: '', Message: 'on one node', Metadata: {} }),
      'NOT_REPLICATED',
      /is held by node feedfacecafe0001 only: there is no other live node to hold a copy/,
    );
    const afterCommit = await s.admin.call('Commits', { Namespace: 'admin', Name: 'dur', Branch: '' });
    assert.equal(afterCommit.length, before.length + 1);
    assert.equal(afterCommit.at(-1)?.Metadata.message, 'on one node');
    // b1 is async by its own setting: acknowledged at once.
    assert.match(
      await s.admin.call('Commit', { Namespace: 'admin', Name: 'dur', Branch: 'b1', Message: 'b1', Metadata: {} }),
      /\S/,
    );
  });

  test('inherit ("" ) clears; nothing left set removes the record', async () => {
    assert.equal((await set({ branch: 'b1', durability: '' })).Source, 'dot');
    assert.deepEqual(await set({ durability: '' }), {
      Durability: 'async',
      Source: 'cluster',
      DotDurability: '',
      BranchDurability: '',
    });
    assert.equal(await stored(), undefined);
  });

  test('bad input: an unknown durability, a dot or branch that does not exist, a user who cannot see the dot', async () => {
    await rejectsCode(set({ durability: 'fast' }), 'INVALID_ARGUMENT', /durability must be sync or async, not "fast"/);
    await rejectsCode(set({ branch: 'nope', durability: 'sync' }), 'BRANCH_NOT_FOUND');
    await rejectsCode(
      s.admin.call('SetDurability', { Namespace: 'admin', Name: 'nope', Branch: '', WholeDot: true, Durability: 'sync' }),
      'DOT_NOT_FOUND',
    );
    await s.admin.call('RegisterNewUser', { Name: 'eve', Email: 'eve@example.com', Password: 'eve-pw-123' });
    const eve = s.client('eve', 'eve-pw-123');
    await rejectsCode(
      eve.call('SetDurability', { Namespace: 'admin', Name: 'dur', Branch: '', WholeDot: true, Durability: 'async' }),
      'DOT_NOT_FOUND',
    );
    await rejectsCode(eve.call('GetDurability', { Namespace: 'admin', Name: 'dur', Branch: '' }), 'DOT_NOT_FOUND');
  });

  test('deleting the dot removes its record', async () => {
    await set({ durability: 'sync' });
    assert.ok(await stored());
    await s.admin.call('Delete', { Namespace: 'admin', Name: 'dur' });
    assert.equal(await stored(), undefined);
  });
});
