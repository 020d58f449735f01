import type { DotmeshClient } from '@dotmesh/rpc/client';
import { type CoreV1Api, CustomObjectsApi, type KubeConfig, StorageV1Api } from '@kubernetes/client-node';
import { adminClient } from './admin-client.ts';
import { mirrorDots } from './dot-mirror-loop.ts';
import { DotTransfers } from './dot-transfers.ts';
import type { Logger } from './logger.ts';
import { isServing } from './plan.ts';
import { Populator } from './populator.ts';
import { NODE_LABEL, ROLE_LABEL, SERVER_ROLE } from './server-pod.ts';

/**
 * The operator's second loop, beside the server pods' (controller.ts), run by the leader only:
 * every `mirrorMs` the Dot objects are made to mirror the dots of the store (dot-mirror-loop.ts),
 * and every TRANSFER_TICK_MS the DotTransfers are advanced (dot-transfers.ts), then the PVCs
 * that name a DotCommit are populated (populator.ts, whose pulls are DotTransfers); a transfer
 * that ends triggers a mirror step (its dot appeared or changed). Both talk to the server of a
 * serving server pod (as admin, the Secret `dotmesh`'s key); with none serving they wait. A
 * failed step is logged and the next tick tries again; until the CRDs are served, every step
 * fails and says so in the log.
 */
export interface DotControllerOptions {
  readonly kubeConfig: KubeConfig;
  readonly core: CoreV1Api;
  readonly namespace: string;
  readonly log: Logger;
  readonly instance: string;
  readonly mirrorMs: number;
}

const TRANSFER_TICK_MS = 2_000;

export async function startDotController(o: DotControllerOptions): Promise<{ stop(): Promise<void> }> {
  const custom = o.kubeConfig.makeApiClient(CustomObjectsApi);
  const ctx = { custom, core: o.core, namespace: o.namespace, log: o.log, instance: o.instance };
  const server = (preferNode?: string) => servingServer(o, preferNode);
  const transfers = new DotTransfers({ ...ctx, server });
  const populator = new Populator({ ...ctx, server, storage: o.kubeConfig.makeApiClient(StorageV1Api) });
  let stopping = false;
  let running: Promise<unknown> = Promise.resolve();
  let lastProblem = '';
  const guarded = (what: string, f: () => Promise<unknown>) => {
    running = running.then(f).catch((e) => {
      const problem = `${what}: ${String((e as Error)?.message ?? e)}`;
      // The same failure every tick (the CRDs not installed yet) is logged once.
      if (problem !== lastProblem) o.log.warn(`${what} failed; trying again`, { error: String((e as Error)?.message ?? e) });
      lastProblem = problem;
    });
    return running;
  };
  const mirror = () =>
    guarded('mirroring the dots', async () => {
      const s = await servingServer(o);
      if (!s) return;
      await mirrorDots(ctx, s.client, s.nodeByAddress);
      lastProblem = '';
    });
  const tick = () => {
    void guarded('advancing the DotTransfers', async () => {
      const { finished } = await transfers.step();
      if (finished) void mirror();
    });
    return guarded('populating the PVCs of DotCommits', () => populator.step());
  };
  const mirrorTimer = setInterval(() => {
    if (!stopping) void mirror();
  }, o.mirrorMs);
  const transferTimer = setInterval(() => {
    if (!stopping) void tick();
  }, TRANSFER_TICK_MS);
  void mirror();
  o.log.info('mirroring dots and running DotTransfers', { namespace: o.namespace, mirrorSeconds: o.mirrorMs / 1000 });
  return {
    async stop() {
      stopping = true;
      clearInterval(mirrorTimer);
      clearInterval(transferTimer);
      await running;
    },
  };
}

/**
 * A client of a serving server (`preferNode`'s when it serves), its node, and the Kubernetes
 * node of each serving server pod by its address.
 */
async function servingServer(
  o: DotControllerOptions,
  preferNode?: string,
): Promise<{ client: DotmeshClient; node: string; nodeByAddress: Map<string, string> } | undefined> {
  const pods = (
    await o.core.listNamespacedPod({ namespace: o.namespace, labelSelector: `${ROLE_LABEL}=${SERVER_ROLE}` })
  ).items.filter(isServing);
  const pod = pods.find((p) => p.metadata?.labels?.[NODE_LABEL] === preferNode) ?? pods[0];
  const address = pod?.status?.hostIP;
  if (!pod || !address) return undefined;
  const nodeByAddress = new Map(pods.map((p) => [p.status?.hostIP ?? '', p.metadata?.labels?.[NODE_LABEL] ?? '']));
  return { client: await adminClient(o, address), node: pod.metadata?.labels?.[NODE_LABEL] ?? '', nodeByAddress };
}
