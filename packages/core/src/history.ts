/**
 * Pure history functions over commit id lists (oldest first). They never touch I/O, so the
 * transfer planner and the divergence checks can be unit-tested exhaustively.
 */
export type HistoryRelation =
  | { readonly kind: 'equal' }
  | { readonly kind: 'ahead'; readonly common: string | null; readonly extra: readonly string[] }
  | { readonly kind: 'behind'; readonly common: string | null; readonly missing: readonly string[] }
  | {
      readonly kind: 'diverged';
      readonly common: string | null;
      readonly ours: readonly string[];
      readonly theirs: readonly string[];
    };

/** Index of the latest commit both lists share as a common prefix, or -1. */
export function latestCommonIndex(ours: readonly string[], theirs: readonly string[]): number {
  const n = Math.min(ours.length, theirs.length);
  let i = 0;
  while (i < n && ours[i] === theirs[i]) i++;
  return i - 1;
}

/** Compares two linear histories the way git's fast-forward check does. */
export function compareHistories(ours: readonly string[], theirs: readonly string[]): HistoryRelation {
  const idx = latestCommonIndex(ours, theirs);
  const common = idx >= 0 ? (ours[idx] as string) : null;
  const oursExtra = ours.slice(idx + 1);
  const theirsExtra = theirs.slice(idx + 1);
  if (oursExtra.length === 0 && theirsExtra.length === 0) return { kind: 'equal' };
  if (theirsExtra.length === 0) return { kind: 'ahead', common, extra: oursExtra };
  if (oursExtra.length === 0) return { kind: 'behind', common, missing: theirsExtra };
  return { kind: 'diverged', common, ours: oursExtra, theirs: theirsExtra };
}
