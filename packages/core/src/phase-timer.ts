/**
 * Where an operation's time goes, for its log line: each `mark(name)` adds the time since the
 * previous mark (or the timer's start) to `name`, in whole milliseconds. `at` marks an earlier
 * moment than now (never before the previous mark).
 */
export interface PhaseTimer {
  mark(name: string, at?: number): void;
  totals(): Record<string, number>;
}

/** A timer reading the monotonic clock `now` (milliseconds; callers pass `performance.now`). */
export function phaseTimer(now: () => number): PhaseTimer {
  let last = now();
  const totals: Record<string, number> = {};
  return {
    mark(name, at = now()) {
      const t = Math.max(at, last);
      totals[name] = Math.round((totals[name] ?? 0) + t - last);
      last = t;
    },
    totals: () => totals,
  };
}
