/**
 * Node's test-runner global setup for the run's shared Kubernetes test cluster (shared.ts):
 * `node --test --test-global-setup=packages/testkit/src/k8s/global-setup.ts ...` (scripts/test-all
 * passes it). Setup starts nothing: the first test that needs the cluster starts it. Teardown
 * stops it and says so on stderr (the run's log shows that the cluster went with the run).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { testRoot } from '../tmp.ts';
import { SHARED_DIR_ENV, SHARED_OWNER_ENV, stopSharedCluster } from './shared.ts';

export async function globalSetup(): Promise<void> {
  process.env[SHARED_DIR_ENV] = join(testRoot(), `dmtest-k8s-shared-${process.pid}`);
  process.env[SHARED_OWNER_ENV] = String(process.pid);
}

export async function globalTeardown(): Promise<void> {
  const dir = process.env[SHARED_DIR_ENV];
  if (dir === undefined || dir === '' || !existsSync(dir)) return;
  const t0 = Date.now();
  const stopped = await stopSharedCluster(dir);
  process.stderr.write(
    `k8s global teardown: ${stopped === undefined ? 'no cluster daemon was running' : `stopped the shared test cluster (daemon pid ${stopped})`} in ${Date.now() - t0} ms\n`,
  );
}
