/**
 * Fails on a dependency edge that points the wrong way between workspace packages.
 *
 * Layers, low to high: core (0); storage, store, rpc (1); transfer (2); server, cli, csi, flexvolume,
 * provisioner, operator (3); testkit, cloud-csi (the test-only CSI driver) (4); bench, e2e (5).
 * A package may depend only on packages of lower layers, except that cli, csi and flexvolume may
 * depend only on core and rpc, provisioner only on core (clients never touch storage or the
 * server's internals), and operator only on core, rpc and store (the cluster's shared records;
 * never the server's internals). Test code (`*.test.*`,
 * `conformance.*`, anything under a `test/` directory) and devDependencies may also use testkit. Checked: package.json dependency
 * fields, and static, dynamic and require imports of `@dotmesh/*` in every source file; a
 * relative import that reaches into another package's directory is always a violation.
 *
 * Usage: node scripts/check-layers.ts [repo-root]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export const LAYERS: Readonly<Record<string, number>> = {
  core: 0,
  storage: 1,
  store: 1,
  rpc: 1,
  transfer: 2,
  server: 3,
  cli: 3,
  csi: 3,
  flexvolume: 3,
  provisioner: 3,
  operator: 3,
  testkit: 4,
  'cloud-csi': 4,
  bench: 5,
  e2e: 5,
};

/** Packages restricted to an explicit list instead of "any lower layer". */
export const ONLY: Readonly<Record<string, readonly string[]>> = {
  cli: ['core', 'rpc'],
  csi: ['core', 'rpc'],
  flexvolume: ['core', 'rpc'],
  provisioner: ['core'],
  operator: ['core', 'rpc', 'store'],
};

const SCOPE = '@dotmesh/';
const TEST_ONLY_TARGET = 'testkit';
const SOURCE_EXT = /\.(?:[cm]?[jt]s|tsx|jsx)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', 'coverage']);
const PROD_DEP_FIELDS = ['dependencies', 'peerDependencies', 'optionalDependencies'] as const;

export interface Violation {
  /** Path relative to the repo root. */
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export interface LayerReport {
  readonly violations: Violation[];
  readonly packages: number;
  readonly files: number;
}

interface Pkg {
  readonly short: string;
  readonly dir: string;
}

/** Why `from` may not use `to`, or undefined when the edge is allowed. */
export function edgeProblem(from: string, to: string, isTest: boolean): string | undefined {
  if (from === to) return undefined;
  const lf = LAYERS[from];
  const lt = LAYERS[to];
  if (lf === undefined) return `${SCOPE}${from} has no layer: add it to LAYERS in scripts/check-layers.ts`;
  if (lt === undefined) return `${SCOPE}${to} is not a known package (no layer)`;
  if (isTest && to === TEST_ONLY_TARGET) return undefined;
  const only = ONLY[from];
  if (only !== undefined) {
    return only.includes(to) ? undefined : `${from} may import only ${only.join(', ')}${isTest ? ', testkit' : ''}`;
  }
  if (lt < lf) return undefined;
  return `${from} (layer ${lf}) may import only lower layers, and ${to} is layer ${lt}`;
}

export function isTestFile(relPath: string): boolean {
  const parts = relPath.split(/[\\/]/);
  const base = parts.at(-1) ?? '';
  return /\.test\.[cm]?[jt]sx?$/.test(base) || /^conformance\.[cm]?[jt]sx?$/.test(base) || parts.includes('test');
}

function expandWorkspaces(root: string, patterns: readonly string[]): string[] {
  const out: string[] = [];
  for (const pat of patterns) {
    if (pat.endsWith('/*')) {
      const base = join(root, pat.slice(0, -2));
      for (const name of readdirSync(base).sort()) {
        if (statSync(join(base, name)).isDirectory()) out.push(join(base, name));
      }
    } else {
      out.push(join(root, pat));
    }
  }
  return out;
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

function* walk(dir: string): Generator<string> {
  for (const ent of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (ent.name.startsWith('.') || SKIP_DIRS.has(ent.name)) continue;
    const p = join(dir, ent.name);
    if (ent.isDirectory()) yield* walk(p);
    else if (ent.isFile() && SOURCE_EXT.test(ent.name) && !ent.name.endsWith('.d.ts')) yield p;
  }
}

const IMPORT_PATTERNS: readonly RegExp[] = [
  /\bfrom\s*(['"])([^'"\n]+)\1/g, // import x from '…', export … from '…'
  /\bimport\s*(['"])([^'"\n]+)\1/g, // import '…'
  /\bimport\s*\(\s*(['"`])([^'"`\n]+)\1/g, // import('…')
  /\brequire\s*\(\s*(['"`])([^'"`\n]+)\1/g, // require('…')
];

export interface ImportRef {
  readonly spec: string;
  readonly line: number;
}

/** Module specifiers in `text`, skipping those on commented-out lines. */
export function findImports(text: string): ImportRef[] {
  const refs: ImportRef[] = [];
  for (const re of IMPORT_PATTERNS) {
    for (const m of text.matchAll(re)) {
      const spec = m[2];
      if (spec === undefined) continue;
      const lineStart = text.lastIndexOf('\n', m.index) + 1;
      const before = text.slice(lineStart, m.index).trimStart();
      if (before.startsWith('//') || before.startsWith('*') || before.startsWith('/*') || before.includes('//')) continue;
      refs.push({ spec, line: lineOf(text, m.index) });
    }
  }
  return refs.sort((a, b) => a.line - b.line);
}

export function checkLayers(root: string): LayerReport {
  const rootPkg = readJson(join(root, 'package.json'));
  const workspaces = Array.isArray(rootPkg.workspaces) ? (rootPkg.workspaces as string[]) : [];
  const pkgs: Pkg[] = [];
  const violations: Violation[] = [];
  for (const dir of expandWorkspaces(root, workspaces)) {
    const manifest = join(dir, 'package.json');
    let name: unknown;
    try {
      name = readJson(manifest).name;
    } catch {
      continue; // a listed workspace without a package.json yet
    }
    if (typeof name !== 'string' || !name.startsWith(SCOPE)) {
      violations.push({ file: relative(root, manifest), line: 1, message: `workspace package is not in the ${SCOPE} scope` });
      continue;
    }
    pkgs.push({ short: name.slice(SCOPE.length), dir });
  }

  const owner = (absPath: string): Pkg | undefined => pkgs.find((p) => absPath === p.dir || absPath.startsWith(p.dir + sep));
  let files = 0;

  for (const pkg of pkgs) {
    const manifest = join(pkg.dir, 'package.json');
    const manifestText = readFileSync(manifest, 'utf8');
    const json = JSON.parse(manifestText) as Record<string, Record<string, string> | undefined>;
    if (LAYERS[pkg.short] === undefined) {
      violations.push({ file: relative(root, manifest), line: 1, message: edgeProblem(pkg.short, 'core', false) ?? '' });
      continue;
    }
    for (const field of [...PROD_DEP_FIELDS, 'devDependencies'] as const) {
      for (const dep of Object.keys(json[field] ?? {})) {
        if (!dep.startsWith(SCOPE)) continue;
        const problem = edgeProblem(pkg.short, dep.slice(SCOPE.length), field === 'devDependencies');
        if (problem === undefined) continue;
        const at = manifestText.search(new RegExp(`"${field}"[\\s\\S]*?"${dep.replace('/', '\\/')}"`));
        const idx = at < 0 ? 0 : manifestText.indexOf(`"${dep}"`, at);
        violations.push({
          file: relative(root, manifest),
          line: lineOf(manifestText, idx),
          message: `${field}: ${dep}: ${problem}`,
        });
      }
    }

    for (const file of walk(pkg.dir)) {
      files++;
      const rel = relative(pkg.dir, file);
      const isTest = isTestFile(rel);
      const text = readFileSync(file, 'utf8');
      for (const ref of findImports(text)) {
        const where = { file: relative(root, file), line: ref.line };
        if (ref.spec.startsWith(SCOPE)) {
          const target = ref.spec.slice(SCOPE.length).split('/')[0] ?? '';
          const problem = pkgs.some((p) => p.short === target)
            ? edgeProblem(pkg.short, target, isTest)
            : `${SCOPE}${target} is not a workspace package`;
          if (problem !== undefined) violations.push({ ...where, message: `imports ${ref.spec}: ${problem}` });
        } else if (ref.spec.startsWith('.')) {
          const target = owner(resolve(dirname(file), ref.spec));
          if (target !== undefined && target !== pkg) {
            violations.push({
              ...where,
              message: `imports ${ref.spec}: reaches into ${SCOPE}${target.short} by relative path; import ${SCOPE}${target.short} instead`,
            });
          }
        }
      }
    }
  }
  return { violations, packages: pkgs.length, files };
}

function main(): void {
  const root = resolve(process.argv[2] ?? join(import.meta.dirname, '..'));
  const report = checkLayers(root);
  for (const v of report.violations) console.error(`${v.file}:${v.line}: ${v.message}`);
  if (report.violations.length > 0) {
    console.error(`check-layers: ${report.violations.length} violation(s) in ${report.packages} packages`);
    process.exitCode = 1;
    return;
  }
  console.log(`check-layers: ${report.packages} packages, ${report.files} files, no violations`);
}

if (import.meta.main) main();
