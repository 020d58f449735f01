/**
 * Removes what a test run left behind, and only that: Kubernetes test clusters (from their
 * cluster-state.json), processes recorded in the run's PID file
 * (or running with the run's directory in their command line or as their working directory),
 * network namespaces named with the run's prefix, mounts under the run's directory and loop
 * devices backed by files in it (by path, or by inode when attached through another mount
 * namespace). Then (with --remove-root) the directory itself.
 *
 * With --since, it also lists folders that tests made in the OS temp dir (--tmp-dir) instead of
 * under the root: named like test folders and created at or after that time. Those are not
 * removed: outside the run's root, one may belong to another run on the same machine.
 *
 * Usage: node scripts/clean-test-leftovers.ts --root DIR [--netns-prefix P] [--remove-root]
 *          [--since EPOCH_MS] [--tmp-dir DIR]
 * Exit status: 0 nothing was left, 2 leftovers were found and removed, 3 test folders were
 * found outside the root (listed, not removed), 1 something could not be removed.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  ancestors,
  deleteNetnsWithPrefix,
  detachLoopDevicesUnder,
  isAlive,
  isTestDirName,
  killTree,
  listNetns,
  mountsUnder,
  processStartTime,
  processTree,
  removeTempDir,
  teardownClustersUnder,
  unmountUnder,
} from '../packages/testkit/src/index.ts';

export interface RecordedPid {
  readonly pid: number;
  readonly startTime: string;
  readonly cmd: string;
}

/** Parses the `pid<TAB>starttime<TAB>command` lines spawnTracked appends to `$DOTMESH_TEST_ROOT/.pids`. */
export function parsePidFile(text: string): RecordedPid[] {
  const out: RecordedPid[] = [];
  for (const line of text.split('\n')) {
    const [pid, startTime = '', ...cmd] = line.split('\t');
    if (pid === undefined || !/^\d+$/.test(pid)) continue;
    out.push({ pid: Number(pid), startTime, cmd: cmd.join('\t') });
  }
  return out;
}

/** Processes (other than us and our ancestors) whose command line or cwd is under `root`. */
function processesUsing(root: string): Array<{ pid: number; cmd: string }> {
  const mine = ancestors(process.pid);
  const found: Array<{ pid: number; cmd: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (mine.has(pid)) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // kernel threads and exited processes have no readable cwd
      }
      if (cmd.includes(`${root}/`) || cmd.endsWith(root) || cwd === root || cwd.startsWith(`${root}/`)) found.push({ pid, cmd });
    } catch {
      // gone already
    }
  }
  return found;
}

/**
 * Folders directly in `tmp` named like test folders, created at or after `sinceMs` (birth time,
 * else change time), other than `root` and other runs' roots (a root holds a `.pids` file).
 */
export function strayTestDirs(tmp: string, sinceMs: number, root: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(tmp, { withFileTypes: true })) {
    if (!e.isDirectory() || !isTestDirName(e.name)) continue;
    const path = join(tmp, e.name);
    if (path === root || existsSync(join(path, '.pids'))) continue;
    try {
      const st = statSync(path);
      if ((st.birthtimeMs || st.ctimeMs) >= sinceMs) out.push(path);
    } catch {
      // removed meanwhile
    }
  }
  return out.sort();
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      root: { type: 'string' },
      'netns-prefix': { type: 'string' },
      'remove-root': { type: 'boolean', default: false },
      since: { type: 'string' },
      'tmp-dir': { type: 'string' },
    },
  });
  if (values.root === undefined) throw new Error('--root is required');
  const root = resolve(values.root);
  if (root === '/' || root.split('/').filter(Boolean).length < 2) throw new Error(`refusing to clean a shallow root: ${root}`);
  const since = values.since === undefined ? undefined : Number(values.since);
  if (since !== undefined && !Number.isFinite(since))
    throw new Error(`--since must be a time in ms since the epoch, got ${values.since}`);
  const leftovers: string[] = [];
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
    }
  };

  // Kubernetes test clusters first: their teardown stops the kubelets before the pods, and
  // undoes what they changed outside the root (bridge, cgroups, sysctls, host files).
  await attempt('tear down test clusters', async () => {
    for (const dir of await teardownClustersUnder(root)) leftovers.push(`Kubernetes test cluster ${dir}`);
  });
  const pidFile = `${root}/.pids`;
  if (existsSync(pidFile)) {
    for (const rec of parsePidFile(readFileSync(pidFile, 'utf8'))) {
      // A matching start time proves the PID was not reused by an unrelated process.
      if (processStartTime(rec.pid) !== rec.startTime || rec.startTime === '') continue;
      // A zombie has exited: only its parent's wait() is missing (a stopped test cluster's
      // daemon, reparented to an init that reaps a moment later). Nothing to remove.
      if (!isAlive(rec.pid)) continue;
      leftovers.push(`process ${rec.pid} still running: ${rec.cmd} (children: ${processTree(rec.pid).length - 1})`);
      await attempt(`kill ${rec.pid}`, () => killTree(rec.pid, { graceMs: 3000 }));
    }
  }
  for (const p of processesUsing(root)) {
    leftovers.push(`process ${p.pid} uses the test root: ${p.cmd}`);
    await attempt(`kill ${p.pid}`, () => killTree(p.pid, { graceMs: 3000 }));
  }
  const prefix = values['netns-prefix'];
  if (prefix !== undefined && prefix !== '') {
    for (const ns of listNetns(prefix)) leftovers.push(`network namespace ${ns}`);
    await attempt('delete network namespaces', () => deleteNetnsWithPrefix(prefix));
  }
  for (const m of mountsUnder(`${root}/`)) leftovers.push(`mount ${m}`);
  await attempt('unmount', () => unmountUnder(`${root}/`));
  await attempt('detach loop devices', async () => {
    for (const d of await detachLoopDevicesUnder(`${root}/`)) leftovers.push(`loop device ${d.name} (${d.backFile})`);
  });
  const strays = since === undefined ? [] : strayTestDirs(resolve(values['tmp-dir'] ?? tmpdir()), since, root);
  if (values['remove-root'] && existsSync(root)) await attempt(`remove ${root}`, () => removeTempDir(root));

  for (const l of leftovers) console.log(`clean-test-leftovers: removed leftover ${l}`);
  for (const d of strays) console.log(`clean-test-leftovers: a test made ${d} outside the test root (not removed: rm -rf ${d})`);
  for (const f of failures) console.error(`clean-test-leftovers: FAILED ${f}`);
  if (failures.length > 0) return 1;
  if (strays.length > 0) return 3;
  return leftovers.length > 0 ? 2 : 0;
}

if (import.meta.main) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(`clean-test-leftovers: ${(e as Error).message}`);
      process.exitCode = 1;
    },
  );
}
