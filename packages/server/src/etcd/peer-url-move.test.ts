import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EtcdMembers } from '@dotmesh/store/etcd-members';
import { Cleanup, startEtcd } from '@dotmesh/testkit';
import { SILENT_LOGGER } from '../log.ts';
import { movePeerUrl } from './peer-url-move.ts';

/**
 * The time etcd is given to take a moved member's new peer URL (`waitMs`) counts from the end
 * of `beforeChange` (the wait for the pool's earlier holder, up to its lease's TTL): on a real
 * etcd (TLS), a `beforeChange` longer than `waitMs` after which etcd answers nothing for a while
 * (stopped, SIGSTOP) — the first change times out — still ends with the change made.
 */
test('a wait for the earlier holder longer than waitMs leaves etcd its whole waitMs to take the change', async () => {
  const cleanup = new Cleanup();
  let resumed: Promise<void> | undefined;
  try {
    const etcd = await startEtcd({ cleanup, tls: true });
    const tls = { ca: etcd.caPem!, cert: etcd.certPem!, key: etcd.keyPem! };
    const peerUrl = 'http://127.0.0.1:2';
    await movePeerUrl({
      nodeId: 'dmtest',
      peerUrl,
      endpoints: etcd.endpoints,
      tls,
      // Its retries after etcd resumes (5.5 s in) have 6 s to spare, on a loaded machine too.
      waitMs: 12_000,
      beforeChange: async () => {
        await sleep(12_500);
        // etcd answers nothing for 5.5 s: the first change fails (its request times out at 5 s).
        process.kill(etcd.pid, 'SIGSTOP');
        resumed = sleep(5500).then(() => {
          process.kill(etcd.pid, 'SIGCONT');
        });
      },
      logger: SILENT_LOGGER,
    });
    await resumed;
    const members = new EtcdMembers({ endpoints: etcd.endpoints, ...tls, requestTimeoutMs: 5000 });
    try {
      const listed = await members.list();
      assert.deepEqual(
        listed.map((m) => [m.name, m.peerUrls]),
        [['dmtest', [peerUrl]]],
      );
    } finally {
      members.close();
    }
  } finally {
    await resumed;
    await cleanup.run();
  }
});
