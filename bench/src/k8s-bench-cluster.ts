import {
  type Cleanup,
  type DocInstall,
  installDotmeshFromDoc,
  startTestCluster,
  type TestCluster,
  type TestClusterNode,
  waitForDotmesh,
} from '@dotmesh/testkit';
import { DIST, KUBERNETES_DOC } from './repo-paths.ts';

/**
 * The one-node test cluster P16 and P19 share (testkit's startTestCluster) with Dotmesh
 * installed as docs/kubernetes.md says (the operator manifest; testkit's installDotmeshFromDoc,
 * which the operator's e2e tests use too): started once for both, torn down by `cleanup`.
 */
export interface K8sBenchCluster {
  readonly cluster: TestCluster;
  readonly node: TestClusterNode;
  readonly install: DocInstall;
}

export async function startK8sBenchCluster(cleanup: Cleanup, log: (s: string) => void): Promise<K8sBenchCluster> {
  const t0 = Date.now();
  const cluster = await startTestCluster({ cleanup, nodes: 1 });
  const node = cluster.nodes[0]!;
  log(`one-node test cluster ${cluster.id} up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const t1 = Date.now();
  const install = await installDotmeshFromDoc(cluster, cleanup, { docFile: KUBERNETES_DOC, dist: DIST });
  await waitForDotmesh(cluster, [node]);
  log(`Dotmesh installed from docs/kubernetes.md and serving in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  return { cluster, node, install };
}
