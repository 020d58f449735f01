import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Cleanup, freePorts, skipUnless, startEtcd } from '@dotmesh/testkit';
import { EtcdMembers } from './members.ts';

const cleanup = new Cleanup();
after(() => cleanup.run());

/**
 * The cluster API client on a real etcd (Debian's, TLS with client certificates): a learner is
 * added (it never starts here, so the quorum stays the one member), listed as such, refused
 * promotion while it is not in sync (etcd's own refusal), its peer URL updated, and removed.
 */
describe('EtcdMembers on a real etcd', { skip: skipUnless(['etcd']) }, () => {
  test('list, add a learner, refuse its promotion until it caught up, update its peer URL, remove it', async () => {
    const etcd = await startEtcd({ cleanup, tls: true });
    const members = new EtcdMembers({
      endpoints: etcd.endpoints,
      ...(etcd.caPem ? { ca: etcd.caPem } : {}),
      ...(etcd.certPem ? { cert: etcd.certPem } : {}),
      ...(etcd.keyPem ? { key: etcd.keyPem } : {}),
    });
    try {
      const [one] = await members.list();
      assert.ok(one && one.name === 'dmtest' && !one.learner && one.clientUrls.includes(etcd.endpoints[0]!));
      const [port] = (await freePorts(1)) as [number];
      const peerUrl = `https://127.0.0.1:${port}`;
      const { added, members: all } = await members.addLearner(peerUrl);
      assert.equal(all.length, 2);
      assert.ok(added.learner && added.name === '' && added.peerUrls.includes(peerUrl));
      const listed = (await members.list()).find((m) => m.id === added.id);
      assert.ok(listed?.learner, 'listed as a learner');
      await assert.rejects(members.promote(added.id), (e: Error) => {
        assert.match(e.message, /cannot promote member .*in sync with leader/);
        return true;
      });
      // A member's peer URL changed (its host moved): listed at the new one.
      const [moved] = (await freePorts(1)) as [number];
      await members.update(added.id, [`https://127.0.0.1:${moved}`]);
      assert.deepEqual((await members.list()).find((m) => m.id === added.id)?.peerUrls, [`https://127.0.0.1:${moved}`]);
      await members.remove(added.id);
      assert.deepEqual(
        (await members.list()).map((m) => m.id),
        [one.id],
      );
    } finally {
      members.close();
    }
  });
});
