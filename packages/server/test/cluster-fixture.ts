import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { after, before } from 'node:test';
import { createExec, type StorageDriver } from '@dotmesh/storage';
import { MemoryStore, type Store } from '@dotmesh/store';
import { Cleanup, freePorts, makeTempDir } from '@dotmesh/testkit';
import type { NodeTls } from '../src/cluster/node-transport.ts';
import type { ContainerTracker } from '../src/dots/containers.ts';
import { ensureClusterPki, ensureNodeCert, pkiFiles } from '../src/tls/pki.ts';
import { type InProcessServer, startInProcess } from './in-process.ts';

/**
 * Several in-process servers sharing one in-memory store, each with its own pool and a
 * node-to-node endpoint on 127.0.0.1 with certificates of one cluster CA: the unit-level
 * cluster the routing tests use (the e2e tests run real processes in network namespaces).
 */
export interface InProcessCluster {
  readonly store: Store;
  readonly nodes: InProcessServer[];
  /** Certificates of the same CA for another node id (forged-call tests). */
  tlsFor(nodeId: string): Promise<NodeTls>;
  /** This CA's material only (a CA of another cluster, for tests). */
  readonly caDir: string;
  close(): Promise<void>;
}

export const NODE_IDS = ['a0a0a0a0a0a00001', 'b0b0b0b0b0b00002', 'c0c0c0c0c0c00003'] as const;

export async function startInProcessCluster(
  cleanup: Cleanup,
  count = 2,
  o: {
    readonly drivers?: readonly StorageDriver[];
    readonly nodeIds?: readonly string[];
    readonly containers?: readonly (ContainerTracker | undefined)[];
  } = {},
): Promise<InProcessCluster> {
  const exec = createExec();
  const caDir = await makeTempDir('cluster-ca', cleanup);
  await ensureClusterPki({ stateDir: caDir, exec, subjectAltNames: ['127.0.0.1'] });
  const tlsFor = async (nodeId: string): Promise<NodeTls> => {
    const dir = await makeTempDir(`node-${nodeId}`, cleanup);
    const own = pkiFiles(dir);
    const ca = pkiFiles(caDir);
    await mkdir(own.dir, { recursive: true, mode: 0o700 });
    await copyFile(ca.caCert, own.caCert);
    await copyFile(ca.caKey, own.caKey);
    const files = await ensureNodeCert({ stateDir: dir, exec, nodeId, addresses: ['127.0.0.1'] });
    const [caPem, cert, key] = await Promise.all([readFile(files.caCert), readFile(files.cert), readFile(files.key)]);
    return { ca: caPem, cert, key };
  };
  const store = await MemoryStore.open();
  const ports = await freePorts(count);
  const nodes: InProcessServer[] = [];
  for (let i = 0; i < count; i++) {
    const nodeId = o.nodeIds?.[i] ?? NODE_IDS[i]!;
    const driver = o.drivers?.[i];
    const containers = o.containers?.[i];
    nodes.push(
      await startInProcess({
        store,
        keepStoreOpen: true,
        nodeId,
        ...(driver ? { driver } : {}),
        ...(containers ? { containers } : {}),
        cluster: { port: ports[i]!, addresses: ['127.0.0.1'], tls: await tlsFor(nodeId) },
      }),
    );
  }
  return {
    store,
    nodes,
    tlsFor,
    caDir,
    async close() {
      for (const n of nodes.splice(0).reverse()) await n.close().catch(() => undefined);
      await store.close();
    },
  };
}

/**
 * Registers before/after hooks (in the calling describe) that start an in-process cluster and
 * stop it with everything else `cleanup` holds; returns accessors for use inside the tests.
 */
export function useInProcessCluster(
  count = 2,
  o: Parameters<typeof startInProcessCluster>[2] = {},
): { readonly cleanup: Cleanup; cluster(): InProcessCluster; node(i: number): InProcessServer } {
  const cleanup = new Cleanup();
  let c: InProcessCluster | undefined;
  before(async () => {
    c = await startInProcessCluster(cleanup, count, o);
    cleanup.add(() => c!.close(), 'stop the cluster');
  });
  after(() => cleanup.run());
  return {
    cleanup,
    cluster: () => c!,
    node: (i) => c!.nodes[i]!,
  };
}

/** The volumes a node holds other than replicas (copies of branches another node masters, see replication). */
export async function ownVolumes(driver: StorageDriver): Promise<string[]> {
  return (await driver.listVolumes()).filter((v) => v.label.replica !== true).map((v) => v.id);
}
