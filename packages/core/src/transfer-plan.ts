import { DotmeshError } from './errors.ts';
import { compareHistories } from './history.ts';

/**
 * The decision at the heart of push, pull and clone, as one pure function over the two sides'
 * histories of a branch (commit ids, oldest first). Push and pull use it alike with the roles
 * of sender and receiver swapped. It never wedges: every case either sends, does nothing, or
 * refuses with the data a caller needs to act (the common commit and each side's extras).
 *
 * With `stashOnDivergence`, the receiver's commits after the latest common one (all of them
 * when there is none) move to a `<branch>-DIVERGED-<time>` branch first, then the sender's
 * commits are applied: nothing is lost on either side.
 */
export type TransferPlan =
  | { readonly kind: 'up-to-date' }
  /** Send `commits` incrementally from `from` (null: from scratch, the first one in full). */
  | { readonly kind: 'send'; readonly from: string | null; readonly commits: readonly string[] }
  /** Move the receiver's `stash` commits aside, roll it back to `from`, then send `commits`. */
  | {
      readonly kind: 'stash-then-send';
      readonly from: string | null;
      readonly stash: readonly string[];
      readonly commits: readonly string[];
    };

export interface PlanInput {
  readonly sender: readonly string[];
  /** null: the receiver has no such branch yet. */
  readonly receiver: readonly string[] | null;
  readonly stashOnDivergence: boolean;
  /** For messages: `ns/dot@branch` on each side. */
  readonly senderName: string;
  readonly receiverName: string;
}

export function planTransfer(i: PlanInput): TransferPlan {
  if (i.sender.length === 0) {
    throw new DotmeshError('COMMIT_NOT_FOUND', `${i.senderName} has no commits to send`, { hint: 'commit first' });
  }
  if (i.receiver === null || i.receiver.length === 0) return { kind: 'send', from: null, commits: [...i.sender] };
  const rel = compareHistories(i.sender, i.receiver);
  switch (rel.kind) {
    case 'equal':
      return { kind: 'up-to-date' };
    case 'ahead':
      return { kind: 'send', from: rel.common, commits: rel.extra };
    case 'behind': {
      // The receiver has commits the sender lacks and nothing new comes: only a stash can make
      // the two sides equal; otherwise refuse rather than silently "succeed".
      if (!i.stashOnDivergence) {
        throw new DotmeshError(
          'DIVERGED',
          `${i.receiverName} is ahead of ${i.senderName}: it has ${rel.missing.length} commit(s) after ${rel.common ?? 'the start'} that ${i.senderName} lacks (${preview(rel.missing)})`,
          {
            hint: 'transfer in the other direction, or pass --stash-on-divergence to move those commits to a -DIVERGED- branch',
            data: divergence(i, rel.common, [], rel.missing),
          },
        );
      }
      return { kind: 'stash-then-send', from: rel.common, stash: rel.missing, commits: [] };
    }
    case 'diverged': {
      if (!i.stashOnDivergence) {
        throw new DotmeshError(
          'DIVERGED',
          `${i.senderName} and ${i.receiverName} have diverged${rel.common ? ` after commit ${rel.common}` : ' (no common commit)'}: ${i.senderName} has ${preview(rel.ours)}, ${i.receiverName} has ${preview(rel.theirs)}`,
          {
            hint: "pass --stash-on-divergence to keep the receiving side's commits on a -DIVERGED- branch and complete the transfer",
            data: divergence(i, rel.common, rel.ours, rel.theirs),
          },
        );
      }
      return { kind: 'stash-then-send', from: rel.common, stash: rel.theirs, commits: rel.ours };
    }
  }
}

/** At most this many of each side's extra commit ids travel in a refusal (the counts are exact). */
export const MAX_DIVERGED_IDS = 1000;

/**
 * The data of a DIVERGED refusal: the latest common commit (null: none), the sides' names as
 * in the message, and each side's commits after the common one, oldest first (the first
 * MAX_DIVERGED_IDS) with their counts.
 */
function divergence(i: PlanInput, common: string | null, senderExtra: readonly string[], receiverExtra: readonly string[]) {
  return {
    common,
    sender: i.senderName,
    receiver: i.receiverName,
    senderExtra: senderExtra.slice(0, MAX_DIVERGED_IDS),
    receiverExtra: receiverExtra.slice(0, MAX_DIVERGED_IDS),
    senderExtraCount: senderExtra.length,
    receiverExtraCount: receiverExtra.length,
  };
}

function preview(ids: readonly string[]): string {
  const shown = ids.slice(0, 5).join(', ');
  return ids.length > 5 ? `${shown} and ${ids.length - 5} more` : shown;
}

/**
 * The name of the branch a stash creates: `<branch>-DIVERGED-<RFC 3339 time with ':' → '-'>`,
 * the branch part shortened when needed so the result stays a valid (≤ 64 character) name.
 */
export function divergedBranchName(branch: string, at: Date): string {
  const time = at
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/:/g, '-');
  const suffix = `-DIVERGED-${time}`;
  return `${branch.slice(0, 64 - suffix.length)}${suffix}`;
}
