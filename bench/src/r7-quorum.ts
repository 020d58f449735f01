import { DEFAULT_WRITE_TIMEOUT_MS, EtcdStore } from '@dotmesh/store/etcd';
import { type Cleanup, startEtcdCluster, waitFor } from '@dotmesh/testkit';
import { atMost, summarize, timeMs } from './harness.ts';
import type { Row } from './report.ts';

/** R7 (issue 15): without etcd quorum every write answers with a clear error within 2 s. */
export const R7_LIMIT_MS = 2000;

/**
 * R7, the store's part: a write of the etcd store (the one every mutation ends with) on a real
 * three-member etcd cluster on loopback, answered while two members are frozen (no quorum:
 * UNAVAILABLE, outcome unknown), against the same write with quorum, in the same run. The server
 * adds its own steps (a user read of at most 0.5 s, the mutation's pool steps) to the first
 * write of an outage; later ones are refused before any step (cluster-managed-etcd.test.ts shows
 * the figures through `dm`).
 */
export async function benchQuorumLoss(cleanup: Cleanup, o: { samples: number }): Promise<Row[]> {
  const members = await startEtcdCluster({ cleanup });
  const store = await waitFor(() => EtcdStore.open({ endpoints: members.map((m) => m.endpoint), prefix: 'bench-r7/' }), {
    timeoutMs: 30_000,
    intervalMs: 500,
    what: 'the three-member etcd cluster to answer',
  });
  cleanup.add(() => store.close(), 'R7 store');
  const write = (i: number) => store.txn({ compare: [], success: [{ type: 'put', key: 'k', value: `v${i}` }] });
  await waitFor(() => write(0).then(() => true), { timeoutMs: 30_000, what: 'a first write' });
  const healthy: number[] = [];
  for (let i = 0; i < o.samples; i++) healthy.push(await timeMs(() => write(i)));
  members[1]!.freeze();
  members[2]!.freeze();
  const refused: number[] = [];
  try {
    for (let i = 0; i < o.samples; i++) {
      refused.push(
        await timeMs(() =>
          write(i).then(
            () => {
              throw new Error('a write succeeded without quorum');
            },
            (e: unknown) => {
              if ((e as { code?: string }).code !== 'UNAVAILABLE') throw e;
            },
          ),
        ),
      );
    }
  } finally {
    members[1]!.thaw();
    members[2]!.thaw();
  }
  const figure = summarize(refused);
  const reference = summarize(healthy);
  return [
    {
      id: 'R7',
      what: `etcd store write without quorum → UNAVAILABLE (3 members, 2 frozen; write timeout ${DEFAULT_WRITE_TIMEOUT_MS} ms)`,
      unit: 'ms',
      figure,
      reference: { what: 'the same write with quorum', stats: reference },
      diff: figure.p50 - reference.p50,
      verdict: atMost(`p50 ≤ ${R7_LIMIT_MS} ms`, figure.p50, R7_LIMIT_MS, 'ms'),
    },
  ];
}
