/**
 * The shared test cluster's process (see shared.ts): starts a cluster, writes the path of its
 * directory to `<shared-dir>/ready` (or the error to `<shared-dir>/failed`), then keeps it up
 * until SIGTERM or SIGINT, or until the test runner `--owner` is gone, and tears it down.
 *
 * Usage: node cluster-daemon.ts --shared-dir DIR [--owner PID]
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cleanup } from '../cleanup.ts';
import { isAlive } from '../process.ts';
import { startTestCluster } from './cluster.ts';
import { SHARED_FILES } from './shared.ts';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { 'shared-dir': { type: 'string' }, owner: { type: 'string' } } });
  const dir = values['shared-dir'];
  if (dir === undefined) throw new Error('--shared-dir is required');
  const owner = values.owner === undefined ? undefined : Number(values.owner);
  const log = (s: string) => console.log(`${new Date().toISOString()} ${s}`);
  await writeFile(join(dir, SHARED_FILES.pid), `${process.pid}\n`);

  const cleanup = new Cleanup();
  let stopping = false;
  let wake: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    log(`stopping: ${why}`);
    wake();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const watch = setInterval(() => {
    if (owner !== undefined && !isAlive(owner)) stop(`the test runner (pid ${owner}) is gone`);
  }, 2000);

  let rc = 0;
  try {
    const cluster = await startTestCluster({
      cleanup,
      log,
      onStateWritten: (clusterDir) => writeFile(join(dir, SHARED_FILES.clusterDir), `${clusterDir}\n`),
    });
    await writeFile(join(dir, `${SHARED_FILES.ready}.tmp`), `${cluster.dir}\n`);
    await rename(join(dir, `${SHARED_FILES.ready}.tmp`), join(dir, SHARED_FILES.ready));
    log(`ready: ${cluster.dir}`);
    await stopped;
  } catch (e) {
    rc = 1;
    log(`failed: ${(e as Error).stack ?? e}`);
    await writeFile(join(dir, SHARED_FILES.failed), (e as Error).message);
  } finally {
    clearInterval(watch);
    await rm(join(dir, SHARED_FILES.ready), { force: true });
    try {
      await cleanup.run();
      log('cluster stopped');
    } catch (e) {
      rc = 1;
      log(`teardown failed: ${(e as Error).message}`);
    }
  }
  return rc;
}

process.exitCode = await main();
