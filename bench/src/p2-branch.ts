import { snapshot, syncFs } from './btrfs.ts';
import { rotate, timeMs } from './harness.ts';
import type { Row } from './report.ts';
import { type BenchTarget, targetRows } from './server.ts';
import { NS, type SizedPair, snapName } from './sized.ts';

/**
 * P2: `Branch` RPC from a commit to a new writable, mountable branch; reference: a writable
 * `btrfs subvolume snapshot` of the raw twin's snapshot of the same data. Target: p50 ≤
 * reference + 45 ms, size-independent. Each sample makes a new branch on every target (the bare
 * fixture, the installed configuration) and a raw snapshot, in an order that rotates, so all
 * rows compare against the same reference.
 */
export const P2_SLACK_MS = 45;
const WHAT = 'Branch RPC (writable branch from a commit)';

export async function benchBranch(targets: readonly BenchTarget[], p: SizedPair, samples: number): Promise<Row[]> {
  const from = await Promise.all(
    targets.map((t) =>
      t.s.rpc.call('Commit', { Namespace: NS, Name: t.d.dot, Branch: '', Message: 'branch base', Metadata: {} }),
    ),
  );
  const rawFrom = snapName(p, 'base', 0);
  await snapshot(p.rawLive, rawFrom, true);
  await syncFs(p.rawLive);
  const dot = targets.map(() => [] as number[]);
  const raw: number[] = [];
  for (let i = 0; i < samples; i++) {
    const timeDot = (k: number) => async () => {
      const { s, d } = targets[k]!;
      const branch = { Namespace: NS, Name: d.dot, SourceBranch: 'master', NewBranchName: `b${i}`, SourceCommitId: from[k]! };
      dot[k]!.push(await timeMs(() => s.rpc.call('Branch', branch)));
    };
    const timeRaw = async () => raw.push(await timeMs(() => snapshot(rawFrom, snapName(p, 'b', i), false)));
    await rotate(i, [timeRaw, ...targets.map((_, k) => timeDot(k))]);
  }
  return targetRows({
    id: 'P2',
    what: WHAT,
    size: p.label,
    targets,
    samples: dot,
    reference: { what: 'snapshot (writable)', samples: raw },
    slackMs: P2_SLACK_MS,
    logged: 'created branch',
  });
}
