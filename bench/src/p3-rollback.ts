import { join } from 'node:path';
import { deleteSubvolumes, overwrite, snapshot, swapLive, syncFs } from './btrfs.ts';
import { alternate, KiB, timeMs } from './harness.ts';
import { type Row, slackRow } from './report.ts';
import type { BenchServer } from './server.ts';
import { NS, type SizedPair, snapName } from './sized.ts';

/**
 * P3: `Rollback` RPC of a branch with a 4 KiB uncommitted change back to its last commit
 * (nothing mounted in containers); reference: the same on the raw twin by hand — a writable
 * snapshot of the commit, then live renamed away and the snapshot renamed into its place (the
 * old live is deleted after the clock stops). Target: p50 ≤ reference + 90 ms, size-independent.
 */
export const P3_SLACK_MS = 90;

export async function benchRollback(s: BenchServer, p: SizedPair, samples: number): Promise<Row[]> {
  const to = await s.rpc.call('Commit', { Namespace: NS, Name: p.dot, Branch: '', Message: 'rollback target', Metadata: {} });
  const rawTo = snapName(p, 'r', 0);
  await snapshot(p.rawLive, rawTo, true);
  const dot: number[] = [];
  const raw: number[] = [];
  for (let i = 0; i < samples; i++) {
    await overwrite(join(p.dotLive, 'small.bin'), 4 * KiB, 200 + (i % 50));
    await overwrite(join(p.rawLive, 'small.bin'), 4 * KiB, 200 + (i % 50));
    await syncFs(p.rawLive);
    const timeDot = async () =>
      dot.push(await timeMs(() => s.rpc.call('Rollback', { Namespace: NS, Name: p.dot, Branch: '', SnapshotId: to })));
    const timeRaw = async () => {
      let old = '';
      raw.push(
        await timeMs(async () => {
          old = await swapLive(rawTo, p.rawLive, join(p.rawDir, `swap${i}`));
        }),
      );
      await deleteSubvolumes([old]);
    };
    await alternate(i, timeDot, timeRaw);
  }
  return [
    slackRow({
      id: 'P3',
      what: 'Rollback RPC (4 KiB uncommitted change)',
      size: p.label,
      samples: dot,
      reference: { what: 'snapshot + rename', samples: raw },
      slackMs: P3_SLACK_MS,
    }),
  ];
}
