import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Cleanup, makeTempDir } from '../packages/testkit/src/index.ts';
import { buildBundles, buildFlexDriver, buildPump } from './build.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '..');

test('build: bundles TypeScript with CJS deps into a runnable ESM file; skips missing entries', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  // Entries live under the repo's ignored .tmp/ so that node_modules resolves as for real entries.
  await mkdir(join(repo, '.tmp'), { recursive: true });
  const src = await mkdtemp(join(repo, '.tmp', 'build-test-'));
  c.add(() => rm(src, { recursive: true, force: true }));
  const out = await makeTempDir('build', c);
  await writeFile(
    join(src, 'plain.ts'),
    [
      "import { Command } from 'commander';", // CommonJS: needs the createRequire banner
      "import { validateName } from '@dotmesh/core';", // workspace package, .ts sources
      "const name: string = validateName('dot', 'my-dot');",
      "new Command('x').action(() => console.log('ok ' + name)).parse(process.argv);",
      '',
    ].join('\n'),
  );
  await writeFile(join(src, 'hashbang.ts'), "#!/usr/bin/env node\nconsole.log('hashbang ok');\n");
  const logs: string[] = [];
  const result = await buildBundles({
    root: repo,
    outdir: out,
    entries: [
      { source: join(src, 'plain.ts'), out: 'plain.mjs' },
      { source: join(src, 'missing.ts'), out: 'missing.mjs' },
      { source: join(src, 'hashbang.ts'), out: 'hashbang.mjs' },
    ],
    log: (l) => logs.push(l),
  });
  assert.deepEqual(result, { built: ['plain.mjs', 'hashbang.mjs'], skipped: ['missing.mjs'] });
  assert.ok(logs.some((l) => /warning: .*missing\.ts does not exist yet; skipping missing\.mjs/.test(l)));

  const plain = join(out, 'plain.mjs');
  const code = await readFile(plain, 'utf8');
  assert.ok(code.startsWith('#!/usr/bin/env node\n'));
  assert.equal((await stat(plain)).mode & 0o111, 0o111);
  assert.equal((await run(process.execPath, [plain])).stdout, 'ok my-dot\n');
  // Executable directly through its shebang (node 24 is first on PATH in the test environment).
  const viaShebang = await run(plain, [], {
    env: { ...process.env, PATH: `${resolve(process.execPath, '..')}:${process.env.PATH}` },
  });
  assert.equal(viaShebang.stdout, 'ok my-dot\n');

  const hb = await readFile(join(out, 'hashbang.mjs'), 'utf8');
  assert.equal(hb.match(/^#!/gm)?.length, 1, 'exactly one hashbang line');
  assert.equal((await run(process.execPath, [join(out, 'hashbang.mjs')])).stdout, 'hashbang ok\n');
});

/** Every file `entry` loads at start: itself and its static imports, transitively (not import()). */
async function staticGraph(dir: string, entry: string): Promise<string[]> {
  const seen = new Set<string>();
  const visit = async (file: string): Promise<void> => {
    if (seen.has(file)) return;
    seen.add(file);
    const code = await readFile(file, 'utf8');
    for (const m of code.matchAll(/^(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/gms)) await visit(resolve(file, '..', m[1]!));
  };
  await visit(join(dir, entry));
  return [...seen];
}

test('build: dm loads neither zod nor the cluster code at start (P10)', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const out = await makeTempDir('build-real', c);
  await buildBundles({ root: repo, outdir: out, log: () => {} });
  const files = await staticGraph(out, 'dm.mjs');
  const loaded = (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join('\n');
  assert.doesNotMatch(loaded, /node_modules\/zod\//, 'zod is loaded only by the commands that need it');
  assert.doesNotMatch(loaded, /packages\/cli\/src\/cluster\/init\.ts/, 'cluster init is loaded lazily');
  const { stdout } = await run(process.execPath, [join(out, 'dm.mjs'), '--help']);
  assert.match(stdout, /Usage: dm/);
});

test('build: dotmesh-pump is compiled from its C source beside the bundles and runs', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const out = await makeTempDir('build-pump', c);
  const logs: string[] = [];
  await buildPump(repo, out, (l) => logs.push(l));
  const pump = join(out, 'dotmesh-pump');
  assert.equal((await stat(pump)).mode & 0o111, 0o111);
  assert.equal((await run(pump, ['--version'])).stdout, 'dotmesh-pump 1\n');
  assert.ok(
    logs.some((l) => /dotmesh-pump\.c -> .*dotmesh-pump/.test(l)),
    logs.join('\n'),
  );
});

test('build: the FlexVolume driver is a single executable that runs with no node on PATH', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const out = await makeTempDir('build-flex', c);
  const emptyPath = await makeTempDir('build-flex-path', c);
  await buildFlexDriver(repo, out, () => {});
  const driver = join(out, 'dotmesh-flexvolume');
  assert.equal((await stat(driver)).mode & 0o777, 0o755);
  const init = await run(driver, ['init'], { env: { PATH: emptyPath } });
  assert.deepEqual(JSON.parse(init.stdout), { status: 'Success', capabilities: { attach: false } });
  assert.equal(init.stderr, '', 'nothing on stderr (the kubelet reads both as the reply)');
  const bad = await run(driver, ['mount', '/x', '{"name":"../etc"}'], { env: { PATH: emptyPath } }).then(
    () => assert.fail('a refused mount exits non-zero'),
    (e: { code: number; stdout: string }) => e,
  );
  assert.equal(bad.code, 1);
  assert.equal(JSON.parse(bad.stdout).status, 'Failure');
});
