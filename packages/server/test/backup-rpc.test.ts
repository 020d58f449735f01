import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { DotmeshClient } from '@dotmesh/rpc';
import { MemoryDriver } from '@dotmesh/storage';
import { Cleanup, makeTempDir } from '@dotmesh/testkit';
import { registryMismatches } from '../src/backup/etcd-backup.ts';
import { createDotWithBranch, startInProcess } from './in-process.ts';
import { inProcessStoreKinds } from './store-kinds.ts';

const cleanup = new Cleanup();
after(() => cleanup.run());
const kinds = inProcessStoreKinds(cleanup, 'backup');

for (const [kind, { skip, open }] of Object.entries(kinds)) {
  describe(`DumpEtcd / RestoreEtcd (${kind} store)`, { skip }, () => {
    test('a dump holds verifiers only; restored into an empty store, the keys and passwords work again; dots come from the pool', async () => {
      const driver = new MemoryDriver({ poolId: 'feedfacecafe0001' });
      // Closed without close() (the driver goes on to the second server): its dir goes with `cleanup`.
      const first = await startInProcess({ driver, store: await open(), dir: await makeTempDir('inproc', cleanup) });
      let firstOpen = true;
      const closeFirst = async () => {
        if (!firstOpen) return;
        firstOpen = false;
        await first.server.close();
        await first.store.close();
      };
      cleanup.add(closeFirst);
      await createDotWithBranch(first.admin, 'foo', 'b');
      const { ApiKey: oldKey } = await first.client('admin', first.password).call('ResetApiKey', null);
      const asOld = (s: { url: string }) => new DotmeshClient({ url: s.url, user: 'admin', apiKey: oldKey });
      const dump = await asOld(first).call('DumpEtcd', { Prefix: '' });
      assert.equal(dump.version, 'v1');
      assert.ok(!Number.isNaN(Date.parse(dump.created)));
      assert.deepEqual(
        dump.users?.map((u) => [u.Name, u.ApiKey]),
        [['admin', '']],
      );
      const [dumped] = dump.users ?? [];
      assert.match(dumped?.Password ?? '', /^[0-9a-f]{64}$/, 'the password hash is in the dump');
      assert.match(dumped?.ApiKeyHmac ?? '', /^[0-9a-f]{64}$/, "and the key's verifier");
      assert.ok((dumped?.ApiKeySealed.length ?? 0) > 0, 'and its sealed copy');
      const dumpText = JSON.stringify(dump);
      assert.ok(!dumpText.includes(oldKey) && !dumpText.includes(first.password), 'no key or password in clear');
      assert.deepEqual(
        dump.registry_filesystems?.map((r) => `${r.Name.Namespace}/${r.Name.Name}`),
        ['admin/foo'],
      );
      assert.deepEqual(
        dump.registry_clones?.map((c) => c.Name),
        ['b'],
      );
      assert.equal(dump.filesystem_masters?.length, 2);
      assert.deepEqual(registryMismatches(first.server.ctx.index, dump), []);
      await closeFirst();

      // The store is lost; the server starts on an empty one with new initial credentials.
      const second = await startInProcess({ driver, store: await open() });
      try {
        await assert.rejects(asOld(second).call('Ping', null), { code: 'UNAUTHENTICATED' });
        await assert.rejects(second.admin.call('RestoreEtcd', { Prefix: '', Dump: { version: 'v2' } }), {
          code: 'INVALID_ARGUMENT',
        });
        await assert.rejects(second.admin.call('RestoreEtcd', { Prefix: 'other/', Dump: JSON.stringify(dump) }), {
          code: 'INVALID_ARGUMENT',
        });
        assert.equal(await second.admin.call('RestoreEtcd', { Prefix: '', Dump: JSON.stringify(dump) }), true);
        assert.equal((await asOld(second).call('CurrentUser', null)).Name, 'admin');
        assert.equal(await second.client('admin', first.password).call('Ping', null), true, 'the password is back too');
        assert.deepEqual(
          await second.client('admin', first.password).call('GetApiKey', null),
          { ApiKey: oldKey },
          'GetApiKey with the password opens the restored sealed key',
        );
        const list = await asOld(second).call('List', null);
        assert.deepEqual(Object.keys(list.admin ?? {}), ['foo']);
        assert.deepEqual(await asOld(second).call('Branches', { Namespace: 'admin', Name: 'foo' }), ['b']);
        const again = await asOld(second).call('DumpEtcd', { Prefix: '' });
        assert.deepEqual(again.registry_filesystems, dump.registry_filesystems);
        assert.deepEqual(again.users, dump.users);
      } finally {
        await second.close();
      }
    });

    test('restore reports registry entries the pool does not have, and still restores the users', async () => {
      const s = await startInProcess({ store: await open() });
      try {
        const dump = await s.admin.call('DumpEtcd', { Prefix: '' });
        const ghost = {
          ...dump,
          registry_filesystems: [
            { Id: 'ghost-id', OwnerId: 'admin', Name: { Namespace: 'admin', Name: 'ghost' }, CollaboratorIds: [] },
          ],
          filesystem_masters: [{ filesystem_id: 'ghost-id', node_id: 'n' }],
        };
        assert.deepEqual(registryMismatches(s.server.ctx.index, ghost), [
          'dot admin/ghost (ghost-id) is in the dump but not in the pool',
          'filesystem ghost-id has a master in the dump but is not in the pool',
        ]);
        assert.equal(await s.admin.call('RestoreEtcd', { Prefix: '', Dump: ghost }), true);
        assert.equal(await s.admin.call('Exists', { Namespace: 'admin', Name: 'ghost', Branch: '' }), '', 'the pool wins');
      } finally {
        await s.close();
      }
    });
  });
}
