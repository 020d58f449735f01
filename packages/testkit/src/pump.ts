import { execFile } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir } from './tmp.ts';

const REPO = resolve(import.meta.dirname, '../../..');
/** Where `npm run build` puts dotmesh-pump, the btrfs driver's native data path. */
export const PUMP_BINARY = resolve(REPO, 'dist/dotmesh-pump');
const SOURCES = ['dotmesh-pump.c', 'pump-tls.c', 'pump-tls.h'].map((f) => resolve(REPO, 'packages/storage/native', f));
const BUILD = resolve(REPO, 'packages/storage/native/build-pump');

const mtime = (p: string) => statSync(p, { throwIfNoEntry: false })?.mtimeMs;

let built: Promise<string> | undefined;

/**
 * The path of a dotmesh-pump built from the current sources, for tests that run the btrfs
 * driver or a server from source: `npm run build`'s when it is newer than its sources, else one
 * compiled once per process (by the same script) into a directory under the test root — the
 * repository is never written to; that directory is removed when the process exits.
 */
export function pumpBinary(): Promise<string> {
  built ??= (async () => {
    const have = mtime(PUMP_BINARY);
    if (have !== undefined && [...SOURCES, BUILD].every((f) => have >= (mtime(f) ?? 0))) return PUMP_BINARY;
    const dir = await makeTempDir('pump');
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, 'dotmesh-pump');
    await promisify(execFile)(BUILD, [out]);
    return out;
  })();
  return built;
}
