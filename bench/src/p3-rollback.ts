import { join } from 'node:path';
import { deleteSubvolumes, overwrite, snapshot, swapLive, syncFs } from './btrfs.ts';
import { KiB, rotate, timeMs } from './harness.ts';
import type { Row } from './report.ts';
import { type BenchTarget, targetRows } from './server.ts';
import { NS, type SizedPair, snapName } from './sized.ts';

/**
 * P3: `Rollback` RPC of a branch with a 4 KiB uncommitted change back to its last commit
 * (nothing mounted in containers); reference: the same on the raw twin by hand — a writable
 * snapshot of the commit, then live renamed away and the snapshot renamed into its place (the
 * old live is deleted after the clock stops). Target: p50 ≤ reference + 90 ms, size-independent.
 * Each sample rolls back every target (the bare fixture, the installed configuration) and the
 * raw twin, in an order that rotates, so all rows compare against the same reference.
 */
export const P3_SLACK_MS = 90;
const WHAT = 'Rollback RPC (4 KiB uncommitted change)';

export async function benchRollback(targets: readonly BenchTarget[], p: SizedPair, samples: number): Promise<Row[]> {
  const to = await Promise.all(
    targets.map((t) =>
      t.s.rpc.call('Commit', { Namespace: NS, Name: t.d.dot, Branch: '', Message: 'rollback target', Metadata: {} }),
    ),
  );
  const rawTo = snapName(p, 'r', 0);
  await snapshot(p.rawLive, rawTo, true);
  const dot = targets.map(() => [] as number[]);
  const raw: number[] = [];
  for (let i = 0; i < samples; i++) {
    const lives = [...targets.map((t) => t.d.dotLive), p.rawLive];
    for (const live of lives) await overwrite(join(live, 'small.bin'), 4 * KiB, 200 + (i % 50));
    for (const live of lives) await syncFs(live); // each pool: the targets' may differ from the raw twin's
    const timeDot = (k: number) => async () => {
      const { s, d } = targets[k]!;
      dot[k]!.push(await timeMs(() => s.rpc.call('Rollback', { Namespace: NS, Name: d.dot, Branch: '', SnapshotId: to[k]! })));
    };
    const timeRaw = async () => {
      let old = '';
      raw.push(
        await timeMs(async () => {
          old = await swapLive(rawTo, p.rawLive, join(p.rawDir, `swap${i}`));
        }),
      );
      await deleteSubvolumes([old]);
    };
    await rotate(i, [timeRaw, ...targets.map((_, k) => timeDot(k))]);
  }
  return targetRows({
    id: 'P3',
    what: WHAT,
    size: p.label,
    targets,
    samples: dot,
    reference: { what: 'snapshot + rename', samples: raw },
    slackMs: P3_SLACK_MS,
    logged: 'rolled back',
  });
}
