/**
 * Bundles the executables with esbuild, for Node 24, one build each, with code splitting:
 *   packages/cli/src/bin.ts    -> dist/dm.mjs
 *   packages/server/src/bin.ts -> dist/dotmesh-server.mjs
 *   packages/csi/src/bin.ts    -> dist/dotmesh-csi.mjs (the Kubernetes CSI driver)
 *   packages/provisioner/src/bin.ts -> dist/dotmesh-provisioner.mjs (the dynamic provisioner)
 *   packages/operator/src/bin.ts -> dist/dotmesh-operator.mjs (the Kubernetes operator)
 *   code shared by both, or loaded only by `import()` -> dist/chunks/*.mjs
 * Why splitting: `dm` imports what most commands need; what only some commands need (the
 * cluster code with zod's schemas, ~0.8 MB) sits in chunks loaded on first use, so ordinary
 * commands start faster (docs/benchmarks.md, P10). An entry's file needs the `chunks/`
 * directory beside it: install both (scripts/install does).
 * Node built-ins imported statically are read with `process.getBuiltinModule` instead of
 * `import`: Node's ESM facade of a built-in reads every export, which for `node:http` loads
 * all of undici (its WebSocket getters) and costs ~10 ms at every start.
 * An entry whose source does not exist yet is skipped with a warning. Each entry starts with a
 * `#!/usr/bin/env node` line and is executable; every output file gets a source map beside it.
 * `<outdir>/chunks` is emptied first, so no stale chunk is left behind.
 * Beside the bundles: `<outdir>/dotmesh-pump`, the btrfs driver's C helper (packages/storage/
 * native/build-pump: gcc, libc6-dev, libisal-dev and libssl-dev; docs/install.md), and
 * `<outdir>/dotmesh-flexvolume`, the FlexVolume driver as a single executable (buildFlexDriver).
 *
 * Usage: node scripts/build.ts [--outdir DIR]
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';

export interface Entry {
  /** Source path relative to the repo root. */
  readonly source: string;
  /** Output file name (without directory), ending in `.mjs`. */
  readonly out: string;
}

export const ENTRIES: readonly Entry[] = [
  { source: 'packages/cli/src/bin.ts', out: 'dm.mjs' },
  { source: 'packages/server/src/bin.ts', out: 'dotmesh-server.mjs' },
  { source: 'packages/csi/src/bin.ts', out: 'dotmesh-csi.mjs' },
  { source: 'packages/provisioner/src/bin.ts', out: 'dotmesh-provisioner.mjs' },
  { source: 'packages/operator/src/bin.ts', out: 'dotmesh-operator.mjs' },
];

const SHEBANG = '#!/usr/bin/env node\n';
/** Where chunks go, relative to the output directory. */
export const CHUNKS_DIR = 'chunks';

/**
 * Static `import ... from 'node:x'` (or 'x' for a built-in) becomes a CommonJS-style module:
 * esbuild then reads each imported name off its exports when it is used, and Node never builds
 * the ESM facade (which evaluates every lazy getter). A built-in whose export is a plain object
 * (fs, crypto, child_process, readline, http, ...) is not even loaded until one of its names is
 * first read: its exports are a getter per name (the names of this Node's module, which is the
 * Node the bundles run on), so `dm --help` never loads crypto, say. Any other built-in (process,
 * events, a class or function) is `process.getBuiltinModule('node:x')` as it is. `require()` and
 * `import()` of built-ins are left alone.
 */
const lazyBuiltins: Plugin = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (a) => {
      const name = a.path.replace(/^node:/, '');
      if (a.kind !== 'import-statement' || !builtinModules.includes(name)) return undefined;
      return { path: `node:${name}`, namespace: 'lazy-builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (a) => ({ contents: lazyBuiltinSource(a.path), loader: 'js' }));
  },
};

/** The CommonJS module standing for the built-in `id` (see lazyBuiltins). */
export function lazyBuiltinSource(id: string): string {
  const real: unknown = process.getBuiltinModule(id);
  const load = `process.getBuiltinModule(${JSON.stringify(id)})`;
  const proto = typeof real === 'object' && real !== null ? Object.getPrototypeOf(real) : undefined;
  if (proto !== Object.prototype && proto !== null) return `module.exports = ${load};`;
  const getters = Object.getOwnPropertyNames(real)
    .map((n) => `  ${JSON.stringify(n)}: { get: () => load()[${JSON.stringify(n)}], enumerable: true },`)
    .join('\n');
  return `let m;\nconst load = () => (m ??= ${load});\nmodule.exports = Object.defineProperties({}, {\n${getters}\n});`;
}

/**
 * docker-modem (under dockerode) loads `ssh2` at start for `ssh://` engines, and ssh2 loads
 * optional native addons a bundle cannot hold. We only talk to the engine over its unix
 * socket: `ssh2` becomes a module whose Client refuses to be made.
 */
const noSsh2: Plugin = {
  name: 'no-ssh2',
  setup(b) {
    b.onResolve({ filter: /^ssh2$/ }, () => ({ path: 'ssh2', namespace: 'no-ssh2' }));
    b.onLoad({ filter: /.*/, namespace: 'no-ssh2' }, () => ({
      contents:
        "module.exports = { Client: class { constructor() { throw new Error('dotmesh reaches Docker over its unix socket only (no ssh:// engines)'); } } };",
      loader: 'js',
    }));
  },
};

/**
 * etcd3 reads its gRPC definitions at load time from `${__dirname}/../proto/rpc.proto`, which an
 * ESM bundle has no `__dirname` for: point it at the copy `buildBundles` puts in
 * `<outdir>/chunks/etcd-proto/` (installed with the chunks), found from the chunk or the entry.
 */
const ETCD_PROTO_DIR = 'etcd-proto';
const etcdProto: Plugin = {
  name: 'etcd3-proto',
  setup(b) {
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (a) => {
      const code = await readFile(a.path, 'utf8');
      const original = ['`${', '__dirname}/../proto/rpc.proto`'].join('');
      if (!code.includes(original)) throw new Error(`build: etcd3 no longer loads ${original}; update the etcd3-proto plugin`);
      // __dotmeshBundleDir: the directory of the output file, set by BANNER (this file stays CommonJS).
      const located = `(() => { const p = process.getBuiltinModule('node:path'); const own = p.join(__dotmeshBundleDir, '${ETCD_PROTO_DIR}', 'rpc.proto'); return process.getBuiltinModule('node:fs').existsSync(own) ? own : p.join(__dotmeshBundleDir, '${CHUNKS_DIR}', '${ETCD_PROTO_DIR}', 'rpc.proto'); })()`;
      return { contents: code.replace(original, located), loader: 'js' };
    });
  },
};

/**
 * CommonJS dependencies (pino, commander, ...) call `require` for Node built-ins; an ESM bundle
 * has none, so give it one. The odd local name avoids clashing with bundled identifiers.
 */
const BANNER =
  "import { createRequire as __dotmeshCreateRequire } from 'node:module';\nconst require = __dotmeshCreateRequire(import.meta.url);\nconst __dotmeshBundleDir = import.meta.dirname;";

export interface BuildOptions {
  readonly root: string;
  readonly outdir: string;
  readonly entries?: readonly Entry[];
  readonly log?: (line: string) => void;
}

export interface BuildResult {
  readonly built: string[];
  readonly skipped: string[];
}

export async function buildBundles(opts: BuildOptions): Promise<BuildResult> {
  const { root, outdir, entries = ENTRIES, log = (l) => console.log(l) } = opts;
  await mkdir(outdir, { recursive: true });
  const present: Entry[] = [];
  const skipped: string[] = [];
  for (const entry of entries) {
    if (!entry.out.endsWith('.mjs')) throw new Error(`build: output name ${entry.out} must end in .mjs`);
    if (existsSync(resolve(root, entry.source))) {
      present.push(entry);
    } else {
      log(`build: warning: ${entry.source} does not exist yet; skipping ${entry.out}`);
      skipped.push(entry.out);
    }
  }
  if (present.length === 0) return { built: [], skipped };
  await rm(join(outdir, CHUNKS_DIR), { recursive: true, force: true });
  const started = performance.now();
  // One build per executable: splitting then only moves an executable's own lazily imported
  // parts into chunks. (A single build for both would put modules they share — the RPC client
  // together with zod, say — in one shared chunk that `dm` must load at start.)
  await Promise.all(present.map((e) => buildOne(root, outdir, e)));
  const ms = Math.round(performance.now() - started);
  await cp(join(root, 'node_modules', 'etcd3', 'proto'), join(outdir, CHUNKS_DIR, ETCD_PROTO_DIR), { recursive: true });
  for (const entry of present) {
    const outfile = join(outdir, entry.out);
    // esbuild keeps an entry's own hashbang on the first line; add ours only when there is none.
    const code = await readFile(outfile, 'utf8');
    if (!code.startsWith('#!')) await writeFile(outfile, SHEBANG + code);
    await chmod(outfile, 0o755);
    const shown = relative(root, outfile);
    log(`build: ${entry.source} -> ${shown.startsWith('..') ? outfile : shown} (${ms} ms)`);
  }
  return { built: present.map((e) => e.out), skipped };
}

async function buildOne(root: string, outdir: string, e: Entry): Promise<void> {
  const name = e.out.slice(0, -'.mjs'.length);
  await build({
    absWorkingDir: root,
    entryPoints: { [name]: resolve(root, e.source) },
    outdir,
    entryNames: '[name]',
    chunkNames: `${CHUNKS_DIR}/${name}-[name]-[hash]`,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    sourcemap: 'linked',
    legalComments: 'none',
    banner: { js: BANNER },
    plugins: [lazyBuiltins, etcdProto, noSsh2],
    logLevel: 'warning',
  });
}

/** The native helper of the btrfs driver (packages/storage/native): compiled beside the bundles. */
export const PUMP = { script: 'packages/storage/native/build-pump', out: 'dotmesh-pump' } as const;

export async function buildPump(
  root: string,
  outdir: string,
  log: (line: string) => void = (l) => console.log(l),
): Promise<void> {
  const started = performance.now();
  const out = join(outdir, PUMP.out);
  await new Promise<void>((resolvePromise, reject) => {
    const child = spawn(resolve(root, PUMP.script), [out], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0
        ? resolvePromise()
        : reject(
            new Error(
              `build: ${PUMP.script} exited ${code} (needs gcc, libc6-dev, libisal-dev and libssl-dev: see docs/install.md)`,
            ),
          ),
    );
  });
  const shown = relative(root, out);
  log(
    `build: packages/storage/native/dotmesh-pump.c -> ${shown.startsWith('..') ? out : shown} (${Math.round(performance.now() - started)} ms)`,
  );
}

/**
 * The FlexVolume driver `dotmesh.io/dm` as a Node single executable application: the driver
 * bundled as one CommonJS script (SEA runs CommonJS on Node 24), its blob made by
 * `node --experimental-sea-config`, injected by postject (pinned devDependency) into a copy of
 * the Node binary that runs this build. The kubelet's host runs it with no Node.js installed
 * (it needs only glibc and libstdc++, as Node itself). ~125 MB: it is Node.
 */
export const FLEX_DRIVER = { source: 'packages/flexvolume/src/bin.ts', out: 'dotmesh-flexvolume' } as const;
/** The fuse string Node's SEA support looks for (Node's single-executable-applications docs). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export async function buildFlexDriver(
  root: string,
  outdir: string,
  log: (line: string) => void = (l) => console.log(l),
): Promise<void> {
  const started = performance.now();
  await mkdir(outdir, { recursive: true });
  const work = await mkdtemp(join(outdir, '.flexvolume-'));
  try {
    const script = join(work, 'driver.cjs');
    await build({
      absWorkingDir: root,
      entryPoints: [resolve(root, FLEX_DRIVER.source)],
      outfile: script,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node24',
      legalComments: 'none',
      logLevel: 'warning',
    });
    const blob = join(work, 'driver.blob');
    const seaConfig = join(work, 'sea.json');
    await writeFile(
      seaConfig,
      JSON.stringify({
        main: script,
        output: blob,
        disableExperimentalSEAWarning: true,
        useSnapshot: false,
        useCodeCache: false,
      }),
    );
    await runTool(process.execPath, ['--experimental-sea-config', seaConfig]);
    const exe = join(work, FLEX_DRIVER.out);
    await copyFile(process.execPath, exe);
    const postject = join(root, 'node_modules', 'postject', 'dist', 'cli.js');
    await runTool(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
    await chmod(exe, 0o755);
    await rename(exe, join(outdir, FLEX_DRIVER.out));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const shown = relative(root, join(outdir, FLEX_DRIVER.out));
  log(
    `build: ${FLEX_DRIVER.source} -> ${shown.startsWith('..') ? join(outdir, FLEX_DRIVER.out) : shown} (single executable, ${Math.round(performance.now() - started)} ms)`,
  );
}

/** Runs a build tool; its output is shown only when it fails. */
function runTool(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolvePromise() : reject(new Error(`build: ${command} ${args.join(' ')} exited ${code}:\n${output}`)),
    );
  });
}

async function main(): Promise<void> {
  const root = resolve(import.meta.dirname, '..');
  const { values } = parseArgs({ options: { outdir: { type: 'string', default: join(root, 'dist') } } });
  const outdir = resolve(values.outdir);
  const { built, skipped } = await buildBundles({ root, outdir });
  await buildPump(root, outdir);
  await buildFlexDriver(root, outdir);
  console.log(
    `build: ${built.length} bundle(s), dotmesh-pump and dotmesh-flexvolume built${skipped.length > 0 ? `, ${skipped.length} skipped` : ''}`,
  );
}

if (import.meta.main) await main();
