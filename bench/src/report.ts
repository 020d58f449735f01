import { atMost, round, type Stats, summarize, type Verdict } from './harness.ts';

/**
 * One line of a benchmark's result: a figure measured on Dotmesh, the reference measured in the
 * same run (when the target has one), how they compare, and the target's verdict. The JSON file
 * is an array of these (plus the machine and the run's parameters), stable so that runs of
 * different versions can be compared.
 */
export interface Row {
  /** Target id from targets.md: P1, P2, ... */
  readonly id: string;
  /** What was timed, e.g. "Commit RPC after 4 KiB write + sync". */
  readonly what: string;
  /** Dot size, when the case depends on it. */
  readonly size?: string;
  readonly unit: string;
  readonly figure: Stats;
  readonly reference?: { readonly what: string; readonly stats: Stats };
  /** figure p50 − reference p50 (latencies) ... */
  readonly diff?: number;
  /** ... or figure p50 / reference p50 (rates, size scaling). */
  readonly ratio?: number;
  readonly verdict?: Verdict;
  readonly note?: string;
}

export interface Report {
  readonly date: string;
  readonly mode: 'full' | 'smoke';
  readonly machine: Record<string, string>;
  readonly params: Record<string, unknown>;
  readonly rows: readonly Row[];
  readonly errors: readonly { readonly id: string; readonly error: string }[];
}

const show = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : String(round(x)));

function cells(r: Row): string[] {
  const ref = r.reference;
  const cmp =
    r.diff !== undefined ? `${r.diff >= 0 ? '+' : ''}${show(r.diff)}` : r.ratio !== undefined ? `${show(r.ratio)}×` : '-';
  return [
    r.id,
    r.what,
    r.size ?? '',
    r.unit,
    show(r.figure.p50),
    r.figure.n > 1 ? show(r.figure.p90) : '',
    ref ? `${ref.what}: ${show(ref.stats.p50)}${ref.stats.n > 1 ? ` / ${show(ref.stats.p90)}` : ''}` : '',
    cmp,
    r.verdict ? `${r.verdict.target}: ${r.verdict.text}` : (r.note ?? ''),
  ];
}

const HEADERS = ['id', 'what', 'size', 'unit', 'p50', 'p90', 'reference p50 / p90', 'vs ref', 'target: verdict'];

/** A plain-text table aligned in columns, for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const body = rows.map(cells);
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...body.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) =>
    c
      .map((x, i) => x.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(HEADERS), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** A Markdown table (docs/benchmarks.md); `|` inside cells is escaped. */
export function markdownTable(rows: readonly Row[]): string {
  const esc = (s: string) => s.replaceAll('|', '\\|');
  const line = (c: readonly string[]) => `| ${c.map(esc).join(' | ')} |`;
  return [line(HEADERS), line(HEADERS.map(() => '---')), ...rows.map((r) => line(cells(r)))].join('\n');
}

/**
 * A latency row judged as "figure p50 ≤ reference p50 + slack" (P1, P2, P3 of targets.md):
 * both sample sets summarised, the difference of the medians, and the verdict.
 */
export function slackRow(o: {
  id: string;
  what: string;
  size: string;
  samples: readonly number[];
  reference: { what: string; samples: readonly number[] };
  slackMs: number;
}): Row {
  const figure = summarize(o.samples);
  const reference = summarize(o.reference.samples);
  return {
    id: o.id,
    what: o.what,
    size: o.size,
    unit: 'ms',
    figure,
    reference: { what: o.reference.what, stats: reference },
    diff: figure.p50 - reference.p50,
    verdict: atMost(`p50 ≤ ref + ${o.slackMs} ms`, figure.p50, reference.p50 + o.slackMs, 'ms'),
  };
}
