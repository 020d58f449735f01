import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { test } from 'node:test';

/**
 * Static checks of the test sources for the rules that let the suite run beside a cluster
 * installed with the defaults (README command 1) on the same machine. The tests themselves
 * prove the rest when they run; these catch a test that only breaks on such a machine.
 */
const repo = resolve(import.meta.dirname, '..');
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', '.tmp', 'results']);

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory() && !SKIP_DIRS.has(e.name)) out.push(...walk(join(dir, e.name)));
    else if (e.isFile() && e.name.endsWith('.ts')) out.push(join(dir, e.name));
  }
  return out;
}

/** Test code: test files, test directories and helpers, testkit, the benchmarks. */
export function isTestSource(rel: string): boolean {
  return (
    rel.endsWith('.test.ts') ||
    /^packages\/[^/]+\/test\//.test(rel) ||
    /^packages\/[^/]+\/src\/testing\//.test(rel) ||
    rel.startsWith('packages/testkit/src/') ||
    rel.startsWith('bench/src/')
  );
}

const testSources = () =>
  walk(repo)
    .map((f) => relative(repo, f))
    .filter(isTestSource)
    .map((rel) => ({ rel, text: readFileSync(join(repo, rel), 'utf8') }));

/**
 * `dm cluster init` with a default left in place listens on 32606-32608 or serves
 * /run/docker/plugins/dm.sock, and collides with an installed cluster. Only the test of the
 * defaults uses them, on a host of its own (testkit's isolated host).
 */
const CLUSTER_INIT_FLAGS = [
  '--use-pool-dir',
  '--port',
  '--check-port',
  '--tls-port',
  '--docker-plugin-socket',
  '--docker-socket',
];

/** The test helpers a file imports by relative path (repo-relative), e.g. a node's init flags. */
function importedHelpers(rel: string, text: string): string[] {
  const dir = rel.slice(0, rel.lastIndexOf('/'));
  return [...text.matchAll(/from '(\.{1,2}\/[^']+\.ts)'/g)].map((m) => relative(repo, resolve(repo, dir, m[1]!)));
}

test('every `dm cluster init` a test runs names its own ports and paths, or runs on an isolated host', () => {
  const sources = testSources();
  const byRel = new Map(sources.map((s) => [s.rel, s.text]));
  const runsInit = sources.filter((s) => /'cluster',\s*'init'/.test(s.text));
  assert.ok(runsInit.length >= 3, `found the tests that run dm cluster init: ${runsInit.map((s) => s.rel).join(', ')}`);
  const problems: string[] = [];
  for (const s of runsInit) {
    if (/\bstartIsolatedHost\(/.test(s.text)) continue;
    // Flags may come from a helper it imports (a node's `nodeArgs()`): they count as its own.
    const text = [s.text, ...importedHelpers(s.rel, s.text).map((h) => byRel.get(h) ?? '')].join('\n');
    const missing = CLUSTER_INIT_FLAGS.filter((f) => !text.includes(`'${f}'`));
    if (missing.length > 0) problems.push(`${s.rel}: no ${missing.join(', ')}`);
  }
  assert.deepEqual(problems, []);
});

/** Where a test may make a folder itself instead of with testkit's makeTempDir, and why. */
const OWN_TEMP_DIRS: Readonly<Record<string, string>> = {
  'packages/testkit/src/tmp.ts': 'makeTempDir itself, and the OS temp dir as the root when no test root is set',
  'packages/testkit/src/tmp.test.ts': 'asserts that fallback',
  'packages/testkit/src/cached-build.ts': 'builds test images in their cache, which outlives runs on purpose',
  'bench/src/quota-choice.ts': 'synchronous, under testRoot()',
  'scripts/build.test.ts': "under the repo's ignored .tmp/, so that bundled imports resolve from node_modules",
};

test('tests make their folders under the test root (testkit makeTempDir), never in the OS temp dir', () => {
  const problems = testSources()
    .filter((s) => !(s.rel in OWN_TEMP_DIRS))
    .flatMap((s) =>
      s.text
        .split('\n')
        .map((line, i) => ({ line, at: `${s.rel}:${i + 1}` }))
        .filter(({ line }) => /\btmpdir\(\)|\bmkdtemp(?:Sync)?\(/.test(line))
        .map(({ line, at }) => `${at}: ${line.trim()}`),
    );
  assert.deepEqual(problems, []);
});

/** Paths a source names relative to itself: `resolve|join(import.meta.dirname, '...', ...)`, `new URL('...', import.meta.url)`. */
export function relativePaths(text: string): string[][] {
  const out: string[][] = [];
  for (const m of text.matchAll(/\b(?:resolve|join)\(\s*import\.meta\.dirname\s*,((?:\s*'[^']*'\s*,?)+)\s*\)/g))
    out.push([...(m[1] ?? '').matchAll(/'([^']*)'/g)].map((x) => x[1]!));
  for (const m of text.matchAll(/new URL\(\s*'([^']*)'\s*,\s*import\.meta\.url\s*\)/g)) out.push([m[1]!]);
  return out;
}

test('tests read only files inside the repository', () => {
  assert.deepEqual(relativePaths("resolve(import.meta.dirname, '../a', 'b.md') + new URL('../c.ts', import.meta.url)"), [
    ['../a', 'b.md'],
    ['../c.ts'],
  ]);
  const problems: string[] = [];
  let seen = 0;
  for (const s of testSources()) {
    for (const parts of relativePaths(s.text)) {
      seen++;
      const target = resolve(repo, s.rel, '..', ...parts);
      if (target !== repo && !target.startsWith(`${repo}/`)) problems.push(`${s.rel}: ${parts.join(', ')} -> ${target}`);
    }
  }
  assert.ok(seen >= 5, `found the relative paths of the test sources (${seen})`);
  assert.deepEqual(problems, []);
});
