import { snapshot, syncFs } from './btrfs.ts';
import { alternate, timeMs } from './harness.ts';
import { type Row, slackRow } from './report.ts';
import type { BenchServer } from './server.ts';
import { NS, type SizedPair, snapName } from './sized.ts';

/**
 * P2: `Branch` RPC from a commit to a new writable, mountable branch; reference: a writable
 * `btrfs subvolume snapshot` of the raw twin's snapshot of the same data. Target: p50 ≤
 * reference + 45 ms, size-independent. Each sample makes a new branch; samples alternate which
 * side goes first.
 */
export const P2_SLACK_MS = 45;

export async function benchBranch(s: BenchServer, p: SizedPair, samples: number): Promise<Row[]> {
  const from = await s.rpc.call('Commit', { Namespace: NS, Name: p.dot, Branch: '', Message: 'branch base', Metadata: {} });
  const rawFrom = snapName(p, 'base', 0);
  await snapshot(p.rawLive, rawFrom, true);
  await syncFs(p.rawLive);
  const dot: number[] = [];
  const raw: number[] = [];
  for (let i = 0; i < samples; i++) {
    const timeDot = async () =>
      dot.push(
        await timeMs(() =>
          s.rpc.call('Branch', {
            Namespace: NS,
            Name: p.dot,
            SourceBranch: 'master',
            NewBranchName: `b${i}`,
            SourceCommitId: from,
          }),
        ),
      );
    const timeRaw = async () => raw.push(await timeMs(() => snapshot(rawFrom, snapName(p, 'b', i), false)));
    await alternate(i, timeDot, timeRaw);
  }
  return [
    slackRow({
      id: 'P2',
      what: 'Branch RPC (writable branch from a commit)',
      size: p.label,
      samples: dot,
      reference: { what: 'snapshot (writable)', samples: raw },
      slackMs: P2_SLACK_MS,
    }),
  ];
}
