/**
 * The benchmark harness: timing, summary statistics, comparisons against a reference measured in
 * the same run, and the verdict of a target. Pure functions (apart from the clock), no I/O, so the
 * math is unit-tested (harness.test.ts). Figures are never thresholds in tests: a verdict is a
 * statement in a report, not a failure.
 */

/** Summary of a set of samples, in the samples' unit. `n = 0` gives NaN everywhere. */
export interface Stats {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly max: number;
  readonly mean: number;
}

/**
 * The p-th percentile (0 ≤ p ≤ 100) by linear interpolation between the closest ranks (numpy's
 * default, "type 7"): p50 of [1, 2, 3, 4] is 2.5; p90 of 1..10 is 9.1. NaN for no samples.
 */
export function percentile(samples: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} is outside 0..100`);
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

export function summarize(samples: readonly number[]): Stats {
  if (samples.length === 0) return { n: 0, min: Number.NaN, p50: Number.NaN, p90: Number.NaN, max: Number.NaN, mean: Number.NaN };
  return {
    n: samples.length,
    min: Math.min(...samples),
    p50: percentile(samples, 50),
    p90: percentile(samples, 90),
    max: Math.max(...samples),
    mean: samples.reduce((s, x) => s + x, 0) / samples.length,
  };
}

/** Stats of one measurement (a rate over a whole run, a single wall-clock time). */
export function single(value: number): Stats {
  return { n: 1, min: value, p50: value, p90: value, max: value, mean: value };
}

/** figure / reference; NaN when the reference is 0 or missing. */
export function ratio(figure: number, reference: number): number {
  return reference === 0 || !Number.isFinite(reference) ? Number.NaN : figure / reference;
}

/** A target and whether the figure met it. `margin` > 0 is room left, < 0 is how much it missed by. */
export interface Verdict {
  readonly target: string;
  readonly met: boolean;
  readonly margin: number;
  readonly text: string;
}

const fmt = (x: number, unit: string) => `${round(x)}${unit === '×' ? '×' : ` ${unit}`}`;

/** Rounds for display: 3 significant digits below 10, 1 decimal below 100, integers above. */
export function round(x: number): number {
  if (!Number.isFinite(x)) return x;
  const a = Math.abs(x);
  if (a >= 100) return Math.round(x);
  if (a >= 10) return Math.round(x * 10) / 10;
  return Number(x.toPrecision(3));
}

/** `value ≤ limit`: e.g. "p50 ≤ reference + 25 ms" with value = p50 and limit = reference p50 + 25. */
export function atMost(target: string, value: number, limit: number, unit: string): Verdict {
  const margin = limit - value;
  const met = margin >= 0;
  return { target, met, margin, text: met ? `met (${fmt(margin, unit)} to spare)` : `missed by ${fmt(-margin, unit)}` };
}

/** `value ≥ limit`: e.g. "≥ 200 read RPCs/s". */
export function atLeast(target: string, value: number, limit: number, unit: string): Verdict {
  const margin = value - limit;
  const met = margin >= 0;
  return { target, met, margin, text: met ? `met (${fmt(margin, unit)} above)` : `missed by ${fmt(-margin, unit)}` };
}

/** Milliseconds elapsed while `fn` runs (monotonic clock). */
export async function timeMs(fn: () => unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Milliseconds since a `process.hrtime.bigint()` reading. */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** "1 MiB", "100 MiB", "10 GiB". */
export function formatBytes(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}

/** Runs the two measurements in an order that alternates with `i`, so neither always goes first. */
export async function alternate(i: number, a: () => Promise<unknown>, b: () => Promise<unknown>): Promise<void> {
  await rotate(i, [a, b]);
}

/** Runs the measurements one after another, starting with the `i mod n`-th, so each goes first in turn. */
export async function rotate(i: number, fns: readonly (() => Promise<unknown>)[]): Promise<void> {
  for (let k = 0; k < fns.length; k++) await fns[(i + k) % fns.length]!();
}
