import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { EtcdStore } from '@dotmesh/store/etcd';
import { EtcdMembers } from '@dotmesh/store/etcd-members';
import { Cleanup, skipUnless, startEtcd } from '@dotmesh/testkit';
import { SILENT_LOGGER } from '../log.ts';
import { EtcdMemberFollower } from './member-follower.ts';

const cleanup = new Cleanup();
after(() => cleanup.run());

/**
 * The follower on a real etcd: clients opened on another name of the member's address
 * (`localhost` for `127.0.0.1`, as a config from before a membership change would hold) move
 * to the client URL the member list gives, which is persisted once; an unreachable list
 * changes nothing; `start()` does its first round at once. (Several members, joins and removals: e2e/test/cluster-managed-etcd.test.ts.)
 */
describe('EtcdMemberFollower on a real etcd', { skip: skipUnless(['etcd']) }, () => {
  test('moves the store and the membership client to the voting members, persists the list once, keeps them when the list cannot be read', async () => {
    const etcd = await startEtcd({ cleanup });
    const advertised = etcd.endpoints[0]!;
    const other = advertised.replace('127.0.0.1', 'localhost');
    assert.notEqual(other, advertised);
    const store = await EtcdStore.open({ endpoints: [other], prefix: 'follow/' });
    const members = new EtcdMembers({ endpoints: [other] });
    const persisted: (readonly string[])[] = [];
    const follower = new EtcdMemberFollower({
      members,
      store,
      persisted: [other],
      persist: async (e) => void persisted.push(e),
      logger: SILENT_LOGGER,
      intervalMs: 60_000,
    });
    try {
      const seen: string[] = [];
      await store.watch('', {}, (events) => seen.push(...events.map((e) => e.key)));
      await follower.refresh();
      assert.deepEqual(store.endpoints, [advertised]);
      assert.deepEqual(members.endpoints, [advertised]);
      assert.deepEqual(persisted, [[advertised]]);
      await store.put('k', 'v');
      const deadline = Date.now() + 10_000;
      while (!seen.includes('k') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(seen, ['k'], 'the watch moved along');
      await follower.refresh();
      assert.equal(persisted.length, 1, 'an unchanged list is not persisted again');

      members.setEndpoints(['http://127.0.0.1:1']);
      await follower.refresh();
      assert.deepEqual(store.endpoints, [advertised], 'a list that cannot be read changes nothing');
      assert.equal(persisted.length, 1);
    } finally {
      follower.stop();
      members.close();
      await store.close();
    }
  });

  test('start() follows the list at once, not one interval later (a node without a member knows the others before its join endpoint goes)', async () => {
    const etcd = await startEtcd({ cleanup });
    const advertised = etcd.endpoints[0]!;
    const other = advertised.replace('127.0.0.1', 'localhost');
    const store = await EtcdStore.open({ endpoints: [other], prefix: 'follow-start/' });
    const members = new EtcdMembers({ endpoints: [other] });
    const persisted: (readonly string[])[] = [];
    const follower = new EtcdMemberFollower({
      members,
      store,
      persisted: [other],
      persist: async (e) => void persisted.push(e),
      logger: SILENT_LOGGER,
      intervalMs: 3_600_000,
    });
    try {
      follower.start();
      const deadline = Date.now() + 10_000;
      while (persisted.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(persisted, [[advertised]]);
      assert.deepEqual(store.endpoints, [advertised]);
    } finally {
      follower.stop();
      members.close();
      await store.close();
    }
  });
});
