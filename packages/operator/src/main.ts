import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { startController } from './controller.ts';
import { startDotController } from './dot-controller.ts';
import { acquireLeadership } from './leader.ts';
import { jsonLogger } from './logger.ts';
import { OperatorMetrics, serveMetrics } from './metrics.ts';

export const USAGE = `Usage: dotmesh-operator --server-image IMAGE [options]

Keeps one dotmesh-server pod on every selected node of the Kubernetes cluster it runs in,
configured by the ConfigMap <namespace>/configuration; mirrors the dots as Dot objects and runs
DotTransfers, in the same namespace (docs/kubernetes.md).

  --server-image IMAGE  the dotmesh-server image the server pods run
  --namespace NS        where the ConfigMap, the server pods and the Lease are (default: the
                        pod's own namespace, $POD_NAMESPACE, else dotmesh)
  --kubeconfig FILE     reach the API server with this file (default: the in-cluster service account)
  --identity NAME       this replica's name in the leader Lease (default: $POD_NAME, else the host name)
  --no-leader-elect     act without taking the Lease (a single replica only)
  --resync-seconds N    reconcile at least this often (default 30)
  --mirror-seconds N    update the Dot objects from the dots this often (default 10)
  --metrics-port N      serve GET /metrics (dm_operator_*) on this port, all addresses (default
                        32608, the original's op-monitor; 0: none)
  -h, --help`;

export const LEASE_NAME = 'dotmesh-operator';
export const METRICS_PORT = 32608;

export interface MainIo {
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Resolves when the operator should stop (a signal). */
  readonly stopped: Promise<void>;
}

/** Parses the flags, waits to lead, runs the controller until stopped. Returns the exit status. */
export async function main(argv: readonly string[], io: MainIo): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'server-image': { type: 'string' },
        namespace: { type: 'string' },
        kubeconfig: { type: 'string' },
        identity: { type: 'string' },
        'no-leader-elect': { type: 'boolean' },
        'resync-seconds': { type: 'string', default: '30' },
        'mirror-seconds': { type: 'string', default: '10' },
        'metrics-port': { type: 'string', default: String(METRICS_PORT) },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    io.stderr(`dotmesh-operator: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout(`${USAGE}\n`);
    return 0;
  }
  const serverImage = values['server-image'];
  const resync = Number(values['resync-seconds']);
  const mirror = Number(values['mirror-seconds']);
  const metricsPort = Number(values['metrics-port']);
  if (
    typeof serverImage !== 'string' ||
    serverImage === '' ||
    !Number.isInteger(resync) ||
    resync < 1 ||
    !Number.isInteger(mirror) ||
    mirror < 1
  ) {
    io.stderr(
      `dotmesh-operator: --server-image is required and --resync-seconds and --mirror-seconds must be whole numbers above 0\n${USAGE}\n`,
    );
    return 2;
  }
  if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535) {
    io.stderr(`dotmesh-operator: --metrics-port must be a port number (0: none)\n${USAGE}\n`);
    return 2;
  }
  const namespace = (values.namespace as string | undefined) ?? io.env.POD_NAMESPACE ?? 'dotmesh';
  const identity = (values.identity as string | undefined) ?? io.env.POD_NAME ?? hostname();
  const log = jsonLogger(io.stdout);
  const kubeConfig = new KubeConfig();
  if (typeof values.kubeconfig === 'string') kubeConfig.loadFromFile(values.kubeconfig);
  else kubeConfig.loadFromCluster();
  const core = kubeConfig.makeApiClient(CoreV1Api);

  const metrics = new OperatorMetrics();
  const monitor = metricsPort === 0 ? undefined : await serveMetrics(metrics, metricsPort);
  const stop = new AbortController();
  void io.stopped.then(() => stop.abort());
  const leadership = values['no-leader-elect']
    ? undefined
    : await acquireLeadership({
        api: kubeConfig.makeApiClient(CoordinationV1Api),
        namespace,
        name: LEASE_NAME,
        identity,
        log,
        signal: stop.signal,
      });
  if (stop.signal.aborted) {
    monitor?.close();
    return 0;
  }
  metrics.leader(true);
  const controller = await startController({
    kubeConfig,
    core,
    namespace,
    serverImage,
    log,
    instance: identity,
    resyncMs: resync * 1000,
    onStep: (r) => metrics.step(r),
    onProblem: (p) => metrics.problem(p.kind),
  });
  const dots = await startDotController({ kubeConfig, core, namespace, log, instance: identity, mirrorMs: mirror * 1000 });
  const why = await Promise.race([
    io.stopped.then(() => 'stopped' as const),
    leadership?.lost.then(() => 'lost' as const) ?? new Promise<never>(() => {}),
  ]);
  await Promise.all([controller.stop(), dots.stop()]);
  metrics.leader(false);
  monitor?.close();
  if (why === 'lost') return 1; // restart as a candidate
  await leadership?.release();
  log.info('stopped');
  return 0;
}
