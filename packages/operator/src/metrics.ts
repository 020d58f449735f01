import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { ConfigProblemKind } from './config.ts';
import type { StepReport } from './controller.ts';

/**
 * The operator's Prometheus metrics (`dm_operator_*`), served on GET /metrics of its monitor
 * port (32608, `op-monitor`, as the original's).
 */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly #steps = new Counter({
    name: 'dm_operator_reconcile_steps_total',
    help: 'Reconcile steps taken',
    registers: [this.registry],
  });
  readonly #created = new Counter({
    name: 'dm_operator_server_pods_created_total',
    help: 'Server pods created',
    registers: [this.registry],
  });
  readonly #deleted = new Counter({
    name: 'dm_operator_server_pods_deleted_total',
    help: 'Server pods deleted (node unselected or gone, pod ended, or replaced)',
    registers: [this.registry],
  });
  readonly #waiting = new Gauge({
    name: 'dm_operator_server_pods_waiting',
    help: 'Outdated server pods waiting to be replaced (the 75% rule)',
    registers: [this.registry],
  });
  readonly #selected = new Gauge({
    name: 'dm_operator_selected_nodes',
    help: 'Nodes the nodeSelector selects',
    registers: [this.registry],
  });
  readonly #configValid = new Gauge({
    name: 'dm_operator_config_valid',
    help: '1 when the ConfigMap in force is valid, 0 when the last good config is kept',
    registers: [this.registry],
  });
  readonly #problems = new Counter({
    name: 'dm_operator_config_problems_total',
    help: 'ConfigMap problems reported (once per ConfigMap version)',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly #removed = new Counter({
    name: 'dm_operator_nodes_removed_total',
    help: 'Dotmesh nodes removed from the cluster after their Kubernetes node left (deselected and drained, or deleted)',
    registers: [this.registry],
  });
  readonly #leader = new Gauge({
    name: 'dm_operator_leader',
    help: '1 while this replica holds the leader Lease',
    registers: [this.registry],
  });

  step(r: StepReport): void {
    this.#steps.inc();
    this.#created.inc(r.created.length);
    this.#deleted.inc(r.deleted.length);
    this.#removed.inc(r.removedNodes.length);
    this.#waiting.set(r.waiting.length);
    this.#selected.set(r.selectedNodes);
    this.#configValid.set(r.configError ? 0 : 1);
  }

  problem(kind: ConfigProblemKind): void {
    this.#problems.inc({ kind });
  }

  leader(leading: boolean): void {
    this.#leader.set(leading ? 1 : 0);
  }
}

/** Serves GET /metrics on `port` (all addresses of the pod). */
export async function serveMetrics(metrics: OperatorMetrics, port: number, host?: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) =>
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
      () => res.writeHead(500).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
