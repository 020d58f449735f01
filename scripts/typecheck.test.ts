import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

/**
 * `npm run typecheck` covers every TypeScript file of the repository (tests, e2e, bench and
 * scripts included), and core is checked once more without Node's types (it is the pure
 * layer: no I/O, no Buffer).
 */
const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');
const tsc = join(repo, 'node_modules', '.bin', 'tsc');
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', '.tmp', 'results']);

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory() && !SKIP_DIRS.has(e.name)) out.push(...tsFiles(join(dir, e.name)));
    else if (e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(join(dir, e.name));
  }
  return out;
}

async function programFiles(project: string): Promise<string[]> {
  const { stdout } = await run(tsc, ['--listFilesOnly', '-p', project], { cwd: repo, maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n').filter(Boolean);
}

test('the typecheck program holds every .ts file of the repository', async () => {
  const checked = new Set(await programFiles('tsconfig.json'));
  const all = tsFiles(repo);
  assert.ok(all.some((f) => f.includes('/packages/e2e/test/')) && all.some((f) => f.endsWith('.test.ts')));
  const missing = all.filter((f) => !checked.has(f)).map((f) => relative(repo, f));
  assert.deepEqual(missing, [], 'files that tsc never checks');
});

test('core type-checks without Node: no @types/node in its program, only its own non-test sources', async () => {
  const files = await programFiles('packages/core/tsconfig.json');
  assert.deepEqual(
    files.filter((f) => f.includes('@types/')),
    [],
  );
  const own = files.filter((f) => !f.includes('/node_modules/'));
  assert.ok(
    own.length > 0 && own.every((f) => f.startsWith(join(repo, 'packages/core/src/')) && !f.endsWith('.test.ts')),
    own.join('\n'),
  );
});

test('npm run typecheck runs tsc on the root project and on every package project', () => {
  const script = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
    .typecheck;
  const projects = [...(script ?? '').matchAll(/tsc -p (\S+)/g)].map((m) => m[1]);
  const packageProjects = readdirSync(join(repo, 'packages'))
    .filter((p) => readdirSync(join(repo, 'packages', p)).includes('tsconfig.json'))
    .map((p) => `packages/${p}/tsconfig.json`);
  assert.ok(packageProjects.includes('packages/core/tsconfig.json'));
  assert.deepEqual(projects.sort(), ['tsconfig.json', ...packageProjects].sort());
});
