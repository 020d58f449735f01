import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Cleanup, makeTempDir } from '../packages/testkit/src/index.ts';
import { buildBundles, buildFlexDriver, buildPump, lazyBuiltinSource } from './build.ts';

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

/**
 * Every file `entry` loads at start: itself and its static imports, transitively, plus (when
 * `awaited`) what the entry itself awaits at its top level (`await import(...)`, dm's launcher);
 * not other import()s.
 */
async function startupGraph(dir: string, entry: string, awaited = true): Promise<string[]> {
  const seen = new Set<string>();
  const visit = async (file: string): Promise<void> => {
    if (seen.has(file)) return;
    seen.add(file);
    const code = await readFile(file, 'utf8');
    const imports = [...code.matchAll(/^(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/gms)];
    if (awaited && file === join(dir, entry)) imports.push(...code.matchAll(/^await import\("(\.[^"]+)"\)/gm));
    for (const m of imports) await visit(resolve(file, '..', m[1]!));
  };
  await visit(join(dir, entry));
  return [...seen];
}

test('build: dm loads neither zod nor the cluster code at start (P10)', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const out = await makeTempDir('build-real', c);
  await buildBundles({ root: repo, outdir: out, log: () => {} });
  const files = await startupGraph(out, 'dm.mjs');
  const loaded = (await Promise.all(files.map((f) => readFile(f, 'utf8')))).join('\n');
  assert.match(loaded, /packages\/cli\/src\/main\.ts/, 'the graph reaches the CLI behind the launcher');
  assert.doesNotMatch(loaded, /node_modules\/zod\//, 'zod is loaded only by the commands that need it');
  assert.doesNotMatch(loaded, /packages\/cli\/src\/cluster\/init\.ts/, 'cluster init is loaded lazily');
  // The launcher keeps Node's compile cache in the user's cache directory.
  const home = await makeTempDir('build-home', c);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home };
  const { stdout } = await run(process.execPath, [join(out, 'dm.mjs'), '--help'], { env });
  assert.match(stdout, /Usage: dm/);
  const cache = join(home, '.cache', 'dotmesh', 'node-compile-cache');
  const cached = (await readdir(cache, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
  const behindLauncher = files.length - (await startupGraph(out, 'dm.mjs', false)).length;
  assert.ok(
    behindLauncher > 0 && cached >= behindLauncher,
    `${cached} modules cached in ${cache}, of ${behindLauncher} behind the launcher`,
  );
  assert.match(
    (await run(process.execPath, [join(out, 'dm.mjs'), '--help'], { env })).stdout,
    /Usage: dm/,
    'a start from the cache',
  );
  // Built-ins it imports load only when used: `dm --help` needs none of these.
  const probe = join(home, 'modules.cjs');
  await writeFile(
    probe,
    "process.on('exit', () => require('node:fs').writeFileSync(process.env.MODULES_OUT, process.moduleLoadList.join('\\n')));",
  );
  const modulesOut = join(home, 'modules.txt');
  await run(process.execPath, ['-r', probe, join(out, 'dm.mjs'), '--help'], { env: { ...env, MODULES_OUT: modulesOut } });
  const modules = (await readFile(modulesOut, 'utf8')).split('\n');
  assert.ok(modules.includes('NativeModule fs'), 'the probe saw the modules');
  for (const m of ['crypto', 'child_process', 'readline', 'http'])
    assert.ok(!modules.includes(`NativeModule ${m}`), `dm --help loaded ${m}`);
});

test('lazyBuiltinSource: a built-in exporting a plain object loads at the first read of a name; others at once', () => {
  const loads: string[] = [];
  const evaluate = (id: string) => {
    const module = { exports: {} as Record<string, unknown> };
    const getBuiltinModule = (name: string) => {
      loads.push(name);
      return process.getBuiltinModule(name);
    };
    const fakeProcess = { getBuiltinModule };
    new Function('module', 'process', lazyBuiltinSource(id))(module, fakeProcess);
    return module.exports;
  };
  const crypto = evaluate('node:crypto');
  assert.deepEqual(loads, [], 'nothing loaded yet');
  assert.ok(Object.keys(crypto).includes('createHash'), 'every name is there');
  assert.equal(crypto.createHash, process.getBuiltinModule('node:crypto').createHash);
  assert.equal(crypto.randomUUID, process.getBuiltinModule('node:crypto').randomUUID);
  assert.deepEqual(loads, ['node:crypto'], 'loaded once, at the first read');
  const events = evaluate('node:events');
  assert.equal(events, process.getBuiltinModule('node:events'), 'a function (EventEmitter) is the module itself');
  assert.equal(evaluate('node:process'), process, 'so is an object of a class');
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
