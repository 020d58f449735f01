/**
 * Adds up the summaries of several runs of node's test runner (scripts/test-all runs two at once:
 * the Kubernetes test files beside every other file) into one summary in the runner's own format,
 * so the last lines of a run read as one runner's would.
 *
 * Each log must end with a runner's summary (`ℹ tests N`, `ℹ suites N`, `ℹ pass N`, `ℹ fail N`,
 * `ℹ cancelled N`, `ℹ skipped N`, `ℹ todo N`, `ℹ duration_ms X`); the counts are summed, and
 * `duration_ms` is the longest run's (the runs start together). A log without a summary (its
 * runner died) is an error that names the log.
 *
 * Usage: node scripts/merge-summaries.ts LOG...
 * Exit status: 0 the merged summary is printed, 1 a log has no summary (named on stderr).
 */
import { readFileSync } from 'node:fs';

/** The runner's summary keys, in the order it prints them. */
export const SUMMARY_KEYS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo', 'duration_ms'] as const;
export type SummaryKey = (typeof SUMMARY_KEYS)[number];
export type Summary = Partial<Record<SummaryKey, number>>;

const SUMMARY_LINE = new RegExp(`^ℹ (${SUMMARY_KEYS.join('|')}) (\\d+(?:\\.\\d+)?)$`);

/**
 * The summary at the end of one runner's output: for each key, its last value (the spec reporter
 * prints the summary once, at the end). Undefined when the output has no `ℹ tests` line.
 */
export function parseSummary(output: string): Summary | undefined {
  const summary: Summary = {};
  for (const line of output.split('\n')) {
    const m = SUMMARY_LINE.exec(line.trimEnd());
    if (m) summary[m[1] as SummaryKey] = Number(m[2]);
  }
  return summary.tests === undefined ? undefined : summary;
}

/** The summaries added up: counts summed, `duration_ms` the longest. */
export function mergeSummaries(summaries: readonly Summary[]): Summary {
  const merged: Summary = {};
  for (const s of summaries) {
    for (const key of SUMMARY_KEYS) {
      const value = s[key];
      if (value === undefined) continue;
      const before = merged[key];
      merged[key] = before === undefined ? value : key === 'duration_ms' ? Math.max(before, value) : before + value;
    }
  }
  return merged;
}

/** The runner's summary lines for `summary`, in its order and format. */
export function formatSummary(summary: Summary): string[] {
  return SUMMARY_KEYS.filter((k) => summary[k] !== undefined).map((k) => `ℹ ${k} ${summary[k]}`);
}

function main(files: readonly string[]): number {
  if (files.length === 0) {
    process.stderr.write('usage: node scripts/merge-summaries.ts LOG...\n');
    return 1;
  }
  const summaries: Summary[] = [];
  for (const file of files) {
    const summary = parseSummary(readFileSync(file, 'utf8'));
    if (summary === undefined) {
      process.stderr.write(`merge-summaries: ${file} has no summary of node's test runner (did the runner finish?)\n`);
      return 1;
    }
    summaries.push(summary);
  }
  process.stdout.write(`${formatSummary(mergeSummaries(summaries)).join('\n')}\n`);
  return 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
