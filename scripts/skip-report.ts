/**
 * A reporter for node's test runner that lists every skipped suite and test with its reason,
 * and counts them, once the run is over. Node's own summary (`ℹ skipped N`) counts skipped
 * tests only: a suite skipped as a whole (a `describe` whose capability gate said no) counts
 * there as nothing, and its tests never run, so the report names each such suite.
 *
 * Usage (beside another reporter, as scripts/test-all does):
 *   node --test --test-reporter=spec --test-reporter-destination=stdout \
 *     --test-reporter=./scripts/skip-report.ts --test-reporter-destination=FILE ...
 */
import { relative } from 'node:path';

export interface Skipped {
  readonly kind: 'suite' | 'test';
  /** The test file, relative to the working directory. */
  readonly file: string;
  /** Enclosing suites, then the skipped one's own name. */
  readonly path: readonly string[];
  readonly reason: string;
}

interface TestEventData {
  readonly name?: string;
  readonly nesting?: number;
  readonly file?: string;
  readonly skip?: string | boolean;
  readonly details?: { readonly type?: string };
}

/** The report's lines: a header with the counts, then one line per skipped suite or test. */
export function formatSkips(skips: readonly Skipped[]): string[] {
  if (skips.length === 0) return ['== test-all: nothing was skipped'];
  const suites = skips.filter((s) => s.kind === 'suite').length;
  const tests = skips.length - suites;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return [
    `== test-all: skipped ${plural(suites, 'suite')} and ${plural(tests, 'test')} (node's "skipped" counts tests only; a skipped suite's tests did not run):`,
    ...skips.map((s) => `  ﹣ ${s.kind.padEnd(5)} ${[s.file, ...s.path].join(' › ')}: ${s.reason}`),
  ];
}

/** Collects the skips of a stream of test events (node's reporter events). */
export async function collectSkips(
  source: AsyncIterable<{ type: string; data?: unknown }>,
  cwd = process.cwd(),
): Promise<Skipped[]> {
  const skips: Skipped[] = [];
  // Names of the suites and tests being run, by nesting level, per file.
  const open = new Map<string, string[]>();
  for await (const event of source) {
    const data = (event.data ?? {}) as TestEventData;
    const file = data.file ?? '';
    const nesting = data.nesting ?? 0;
    if (event.type === 'test:start') {
      const stack = (open.get(file) ?? []).slice(0, nesting);
      stack[nesting] = data.name ?? '';
      open.set(file, stack);
    } else if ((event.type === 'test:pass' || event.type === 'test:fail') && data.skip !== undefined && data.skip !== false) {
      const path = [...(open.get(file) ?? []).slice(0, nesting), data.name ?? ''];
      skips.push({
        kind: data.details?.type === 'suite' ? 'suite' : 'test',
        file: file === '' ? '(no file)' : relative(cwd, file),
        path,
        reason: typeof data.skip === 'string' && data.skip !== '' ? data.skip : '(no reason given)',
      });
    }
  }
  return skips;
}

export default async function* skipReport(source: AsyncIterable<{ type: string; data?: unknown }>): AsyncGenerator<string> {
  yield `${formatSkips(await collectSkips(source)).join('\n')}\n`;
}
