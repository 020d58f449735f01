import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

/** The built `dm` bundle that end-to-end tests run (made by `npm run build`). */
export const DM_BUNDLE = resolve(import.meta.dirname, '../../../dist/dm.mjs');

export interface DmResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface DmOptions {
  /** HOME of the dm process: its ~/.dotmesh/config lives there. */
  readonly home: string;
  readonly input?: string;
  readonly env?: Record<string, string>;
  readonly timeoutMs?: number;
}

/**
 * Runs the built `dm` like a user would (asynchronously, so an in-process server keeps
 * answering). Never throws for a non-zero exit: tests assert on code, stdout and stderr.
 */
export function runDm(args: readonly string[], o: DmOptions): Promise<DmResult> {
  if (!existsSync(DM_BUNDLE)) throw new Error(`${DM_BUNDLE} is missing: run 'npm run build' first`);
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      process.execPath,
      [DM_BUNDLE, ...args],
      {
        encoding: 'utf8',
        timeout: o.timeoutMs ?? 120_000,
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: o.home, ...o.env },
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolvePromise({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(o.input ?? '');
  });
}
