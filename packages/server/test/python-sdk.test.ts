import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { isCI } from '@dotmesh/testkit';
import { type InProcessServer, startInProcess } from './in-process.ts';

/**
 * The original Python SDK (datadots-api 0.2.4 from PyPI, unmodified) against our server.
 * Its virtualenv is cached where the machine keeps caches, and rebuilt when missing.
 */
const execFileAsync = promisify(execFile);
const SDK = 'datadots-api==0.2.4';
const VENV = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'dotmesh-test', 'python-sdk-0.2.4');
const PYTHON = join(VENV, 'bin', 'python');
const SCRIPT = resolve(import.meta.dirname, 'fixtures/python_sdk_flow.py');

function ensureVenv(): string | undefined {
  if (existsSync(PYTHON)) return undefined;
  const py = spawnSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' });
  if (py.status !== 0) return 'python3 is not installed';
  mkdirSync(join(VENV, '..'), { recursive: true });
  execFileSync('python3', ['-m', 'venv', VENV], { stdio: 'inherit' });
  execFileSync(join(VENV, 'bin', 'pip'), ['install', '-q', SDK], { stdio: 'inherit', timeout: 300_000 });
  return undefined;
}

describe('original Python SDK (datadots-api 0.2.4)', () => {
  let s: InProcessServer;
  let missing: string | undefined;
  before(async () => {
    missing = ensureVenv();
    s = await startInProcess();
  });
  after(async () => s?.close());

  test('ping, create, log, commit with metadata, branch, lookup, delete', async (t) => {
    if (missing) {
      if (isCI()) assert.fail(`missing capability under CI=true: ${missing}`);
      t.skip(missing);
      return;
    }
    // Asynchronously: the server runs in this process and must keep answering.
    const run = await execFileAsync(PYTHON, [SCRIPT, s.url, 'admin', s.apiKey], { encoding: 'utf8', timeout: 120_000 }).catch(
      (e: { stdout?: string; stderr?: string; message: string }) =>
        assert.fail(`python SDK flow failed: ${e.message}\n${e.stdout}\n${e.stderr}`),
    );
    assert.match(run.stdout, /ALL OK/);
  });
});
