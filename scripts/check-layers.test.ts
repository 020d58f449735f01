import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Cleanup, makeTempDir } from '../packages/testkit/src/index.ts';
import { checkLayers, edgeProblem, findImports, isTestFile } from './check-layers.ts';

const run = promisify(execFile);

type Tree = Record<string, string>;

const PACKAGES = ['core', 'storage', 'store', 'rpc', 'server', 'cli', 'testkit'];

function manifest(short: string, deps: string[] = [], devDeps: string[] = []): string {
  const obj = (names: string[]) => Object.fromEntries(names.map((n) => [`@dotmesh/${n}`, '0.1.0']));
  return `${JSON.stringify({ name: `@dotmesh/${short}`, dependencies: obj(deps), devDependencies: obj(devDeps) }, null, 2)}\n`;
}

/** A well-layered fake repo; `extra` adds or replaces files. */
function fakeRepo(extra: Tree = {}): Tree {
  const tree: Tree = {
    'package.json': JSON.stringify({ workspaces: [...PACKAGES.map((p) => `packages/${p}`), 'bench'] }),
    'bench/package.json': manifest('bench', ['core', 'testkit']),
    'bench/src/index.ts': "import { x } from '@dotmesh/testkit';\n",
    'packages/core/src/index.ts': 'export const x = 1;\n',
    'packages/storage/src/index.ts': "import { x } from '@dotmesh/core';\n",
    'packages/storage/src/conformance.ts': "import { freePort } from '@dotmesh/testkit';\n",
    'packages/store/src/index.ts': "export * from '@dotmesh/core';\n",
    'packages/rpc/src/index.ts': "import type { X } from '@dotmesh/core/types';\n",
    'packages/server/src/index.ts': [
      'import {',
      '  a,',
      '  b,',
      "} from '@dotmesh/storage';",
      "// import { nope } from '@dotmesh/cli';",
      "const store = await import('@dotmesh/store');",
      '',
    ].join('\n'),
    'packages/cli/src/index.ts': "import { c } from '@dotmesh/rpc';\nimport '@dotmesh/core';\n",
    'packages/cli/test/e2e.test.ts': "import { makeTempDir } from '@dotmesh/testkit';\n",
    'packages/testkit/src/index.ts': "import { d } from '@dotmesh/server';\n",
  };
  for (const p of PACKAGES) tree[`packages/${p}/package.json`] = manifest(p, p === 'core' ? [] : ['core']);
  return { ...tree, ...extra };
}

async function materialize(tree: Tree, c: Cleanup): Promise<string> {
  const root = await makeTempDir('layers', c);
  for (const [path, text] of Object.entries(tree)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

test('edgeProblem: lower layers allowed, same or higher refused, cli restricted, testkit for tests', () => {
  assert.equal(edgeProblem('server', 'storage', false), undefined);
  assert.equal(edgeProblem('server', 'server', false), undefined);
  assert.match(edgeProblem('storage', 'store', false) ?? '', /only lower layers/);
  assert.match(edgeProblem('core', 'rpc', false) ?? '', /only lower layers/);
  assert.match(edgeProblem('cli', 'storage', false) ?? '', /cli may import only core, rpc/);
  assert.match(edgeProblem('cli', 'server', false) ?? '', /cli may import only core, rpc/);
  assert.equal(edgeProblem('cli', 'rpc', false), undefined);
  assert.match(edgeProblem('csi', 'server', false) ?? '', /csi may import only core, rpc/);
  assert.equal(edgeProblem('csi', 'rpc', false), undefined);
  assert.match(edgeProblem('storage', 'testkit', false) ?? '', /only lower layers/);
  assert.equal(edgeProblem('storage', 'testkit', true), undefined);
  assert.equal(edgeProblem('cli', 'testkit', true), undefined);
  assert.match(edgeProblem('cli', 'store', true) ?? '', /cli may import only/);
  assert.match(edgeProblem('nonesuch', 'core', false) ?? '', /has no layer/);
  assert.equal(edgeProblem('provisioner', 'core', false), undefined);
  assert.match(edgeProblem('provisioner', 'rpc', false) ?? '', /provisioner may import only core/);
  assert.equal(edgeProblem('operator', 'store', false), undefined);
  assert.match(edgeProblem('operator', 'server', false) ?? '', /operator may import only core, rpc, store/);
  assert.match(edgeProblem('operator', 'storage', false) ?? '', /operator may import only/);
});

test('isTestFile and findImports', () => {
  assert.equal(isTestFile('src/a.test.ts'), true);
  assert.equal(isTestFile('src/conformance.ts'), true);
  assert.equal(isTestFile('test/helpers.ts'), true);
  assert.equal(isTestFile('src/testing.ts'), false);
  const refs = findImports(
    "import a from '@dotmesh/a';\n  // import b from '@dotmesh/b';\nconst c = await import(\n  '@dotmesh/c');\nexport * from './d.ts';\nconst e = require(\"@dotmesh/e\");\n",
  );
  assert.deepEqual(refs, [
    { spec: '@dotmesh/a', line: 1 },
    { spec: '@dotmesh/c', line: 3 },
    { spec: './d.ts', line: 5 },
    { spec: '@dotmesh/e', line: 6 },
  ]);
});

test('checkLayers: a well-layered tree passes', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const root = await materialize(fakeRepo(), c);
  const report = checkLayers(root);
  assert.deepEqual(report.violations, []);
  assert.equal(report.packages, 8);
});

test('checkLayers: reports each bad edge with file and line', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const root = await materialize(
    fakeRepo({
      'packages/cli/src/commands/list.ts':
        "import { x } from '@dotmesh/core';\nimport { BtrfsDriver } from '@dotmesh/storage';\n",
      'packages/core/src/bad.ts': "\n\nconst m = await import('@dotmesh/server');\n",
      'packages/store/src/peek.ts': "import { Driver } from '../../storage/src/index.ts';\n",
      'packages/rpc/src/uses-testkit.ts': "import { freePort } from '@dotmesh/testkit';\n",
      'packages/store/package.json': manifest('store', ['core', 'rpc']),
    }),
    c,
  );
  const got = checkLayers(root).violations.map((v) => `${v.file}:${v.line}: ${v.message}`);
  assert.deepEqual(got, [
    'packages/core/src/bad.ts:3: imports @dotmesh/server: core (layer 0) may import only lower layers, and server is layer 3',
    'packages/store/package.json:5: dependencies: @dotmesh/rpc: store (layer 1) may import only lower layers, and rpc is layer 1',
    'packages/store/src/peek.ts:1: imports ../../storage/src/index.ts: reaches into @dotmesh/storage by relative path; import @dotmesh/storage instead',
    'packages/rpc/src/uses-testkit.ts:1: imports @dotmesh/testkit: rpc (layer 1) may import only lower layers, and testkit is layer 4',
    'packages/cli/src/commands/list.ts:2: imports @dotmesh/storage: cli may import only core, rpc',
  ]);
});

test('check-layers CLI exits 1 and prints file:line for a bad edge, 0 for a good tree', async (t) => {
  const c = new Cleanup();
  t.after(() => c.run());
  const script = join(import.meta.dirname, 'check-layers.ts');
  const good = await materialize(fakeRepo(), c);
  const ok = await run(process.execPath, [script, good]);
  assert.match(ok.stdout, /8 packages, \d+ files, no violations/);
  const bad = await materialize(fakeRepo({ 'packages/cli/src/x.ts': "import '@dotmesh/server';\n" }), c);
  await assert.rejects(run(process.execPath, [script, bad]), (e: { code: number; stderr: string }) => {
    assert.equal(e.code, 1);
    assert.match(e.stderr, /^packages\/cli\/src\/x\.ts:1: imports @dotmesh\/server: cli may import only core, rpc$/m);
    return true;
  });
});
