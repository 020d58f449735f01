/**
 * Bundles the executables with esbuild: one self-contained ESM file each, for Node 24.
 *   packages/cli/src/bin.ts    -> dist/dm.mjs
 *   packages/server/src/bin.ts -> dist/dotmesh-server.mjs
 * An entry whose source does not exist yet is skipped with a warning. Each bundle starts with a
 * `#!/usr/bin/env node` line, is executable, and gets a source map beside it.
 *
 * Usage: node scripts/build.ts [--outdir DIR]
 */

import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

export interface Entry {
  /** Source path relative to the repo root. */
  readonly source: string;
  /** Output file name (without directory). */
  readonly out: string;
}

export const ENTRIES: readonly Entry[] = [
  { source: 'packages/cli/src/bin.ts', out: 'dm.mjs' },
  { source: 'packages/server/src/bin.ts', out: 'dotmesh-server.mjs' },
];

const SHEBANG = '#!/usr/bin/env node\n';

/**
 * CommonJS dependencies (pino, commander, ...) call `require` for Node built-ins; an ESM bundle
 * has none, so give it one. The odd local name avoids clashing with bundled identifiers.
 */
const BANNER =
  "import { createRequire as __dotmeshCreateRequire } from 'node:module';\nconst require = __dotmeshCreateRequire(import.meta.url);";

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
  const built: string[] = [];
  const skipped: string[] = [];
  for (const entry of entries) {
    const source = resolve(root, entry.source);
    if (!existsSync(source)) {
      log(`build: warning: ${entry.source} does not exist yet; skipping ${entry.out}`);
      skipped.push(entry.out);
      continue;
    }
    const outfile = join(outdir, entry.out);
    const started = performance.now();
    await build({
      absWorkingDir: root,
      entryPoints: [source],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node24',
      sourcemap: 'linked',
      legalComments: 'none',
      banner: { js: BANNER },
      logLevel: 'warning',
    });
    // esbuild keeps an entry's own hashbang on the first line; add ours only when there is none.
    const code = await readFile(outfile, 'utf8');
    if (!code.startsWith('#!')) await writeFile(outfile, SHEBANG + code);
    await chmod(outfile, 0o755);
    const ms = Math.round(performance.now() - started);
    const shown = relative(root, outfile);
    log(`build: ${entry.source} -> ${shown.startsWith('..') ? outfile : shown} (${ms} ms)`);
    built.push(entry.out);
  }
  return { built, skipped };
}

async function main(): Promise<void> {
  const root = resolve(import.meta.dirname, '..');
  const { values } = parseArgs({ options: { outdir: { type: 'string', default: join(root, 'dist') } } });
  const { built, skipped } = await buildBundles({ root, outdir: resolve(values.outdir) });
  console.log(`build: ${built.length} bundle(s) built${skipped.length > 0 ? `, ${skipped.length} skipped` : ''}`);
}

if (import.meta.main) await main();
