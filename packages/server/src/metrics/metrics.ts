import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../log.ts';

/** What the scrape-time gauges read. */
export interface MetricsSources {
  poolInfo(): Promise<{ readonly totalBytes: number; readonly freeBytes: number }>;
  counts(): { readonly dots: number; readonly branches: number };
  /** For each branch this node masters and each other live node: the commits that node lacks. */
  replicationLag(): ReadonlyArray<{ readonly fsId: string; readonly node: string; readonly commits: number }>;
}

/** RPC methods whose outcomes dm_state_transition_total counts, and their `op` label. */
const OPERATIONS: Readonly<Record<string, string>> = {
  Create: 'create',
  Commit: 'commit',
  Branch: 'branch',
  Rollback: 'rollback',
  Delete: 'delete',
};

const ROUTES = new Set(['/rpc', '/diff', '/metrics', '/check']);
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);

/**
 * The server's Prometheus metrics, in a registry of its own (never prom-client's global one,
 * so several servers in one process keep separate counts). Names follow the original
 * (dm_req_total, dm_req_duration_seconds, dm_rpc_req_duration_seconds,
 * dm_state_transition_total, dm_zpool_usage_percentage) plus ours; docs/api.md lists them.
 * Label values are bounded: routes and HTTP methods outside fixed sets become "other", RPC
 * methods are known names or "unknown". Pool and index gauges are read at each scrape.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'method' | 'path' | 'code'>;
  readonly #requestSeconds: Histogram<'method' | 'path'>;
  readonly #rpcSeconds: Histogram<'method' | 'outcome'>;
  readonly #operations: Counter<'op' | 'result'>;
  readonly #commitSeconds: Histogram;

  constructor(sources: MetricsSources, logger: Logger) {
    const registers = [this.registry];
    this.#requests = new Counter({
      name: 'dm_req_total',
      help: 'HTTP requests served, by method, route and status code',
      labelNames: ['method', 'path', 'code'],
      registers,
    });
    this.#requestSeconds = new Histogram({
      name: 'dm_req_duration_seconds',
      help: 'Time to serve an HTTP request',
      labelNames: ['method', 'path'],
      registers,
    });
    this.#rpcSeconds = new Histogram({
      name: 'dm_rpc_req_duration_seconds',
      help: 'Time to serve a JSON-RPC call, by method and outcome (ok|error)',
      labelNames: ['method', 'outcome'],
      registers,
    });
    this.#operations = new Counter({
      name: 'dm_state_transition_total',
      help: 'Dot operations finished, by operation (create|commit|branch|rollback|delete) and result (ok|error)',
      labelNames: ['op', 'result'],
      registers,
    });
    this.#commitSeconds = new Histogram({
      name: 'dm_commit_duration_seconds',
      help: 'Time to serve a successful Commit (snapshot, metadata, index)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    // Both pool gauges are collected in parallel at a scrape: they share one poolInfo() call.
    let last: { at: number; info: Promise<{ totalBytes: number; freeBytes: number } | undefined> } | undefined;
    const readPool = () => {
      if (!last || Date.now() - last.at > 1000) {
        const info = sources.poolInfo().catch((err: unknown) => {
          logger.warn({ err }, 'metrics: cannot read the pool');
          return undefined;
        });
        last = { at: Date.now(), info };
      }
      return last.info;
    };
    new Gauge({
      name: 'dm_zpool_usage_percentage',
      help: 'Used space of the pool, percent',
      registers,
      async collect() {
        const info = await readPool();
        if (info) this.set(info.totalBytes > 0 ? (100 * Math.max(0, info.totalBytes - info.freeBytes)) / info.totalBytes : 0);
      },
    });
    new Gauge({
      name: 'dm_pool_bytes',
      help: 'Space of the pool in bytes, by kind (total|used|free)',
      labelNames: ['kind'],
      registers,
      async collect() {
        const info = await readPool();
        if (!info) return;
        this.set({ kind: 'total' }, info.totalBytes);
        this.set({ kind: 'used' }, Math.max(0, info.totalBytes - info.freeBytes));
        this.set({ kind: 'free' }, info.freeBytes);
      },
    });
    new Gauge({
      name: 'dm_dots',
      help: 'Dots on this server',
      registers,
      collect() {
        this.set(sources.counts().dots);
      },
    });
    new Gauge({
      name: 'dm_replication_pending_commits',
      help: 'Commits of a branch this node masters that another live node does not hold yet, by branch id and node',
      labelNames: ['branch', 'node'],
      registers,
      collect() {
        this.reset();
        for (const lag of sources.replicationLag()) this.set({ branch: lag.fsId, node: lag.node }, lag.commits);
      },
    });
    new Gauge({
      name: 'dm_branches',
      help: 'Branches on this server, master branches included',
      registers,
      collect() {
        this.set(sources.counts().branches);
      },
    });
  }

  /** One finished HTTP request (any route). */
  observeHttp(method: string, path: string, code: number, seconds: number): void {
    const route = routeOf(path);
    const m = HTTP_METHODS.has(method) ? method : 'other';
    this.#requests.inc({ method: m, path: route, code: String(code) });
    this.#requestSeconds.observe({ method: m, path: route }, seconds);
  }

  /** One finished JSON-RPC call (the /rpc endpoint's observe hook). */
  observeRpc(method: string, seconds: number, ok: boolean): void {
    this.#rpcSeconds.observe({ method, outcome: ok ? 'ok' : 'error' }, seconds);
    const op = OPERATIONS[method];
    if (op !== undefined) this.#operations.inc({ op, result: ok ? 'ok' : 'error' });
    if (method === 'Commit' && ok) this.#commitSeconds.observe(seconds);
  }

  /** The Prometheus text exposition (gauges are read now). */
  async text(): Promise<{ contentType: string; body: string }> {
    const body = await this.registry.metrics();
    return { contentType: this.registry.contentType, body };
  }
}

function routeOf(path: string): string {
  if (path.startsWith('/diff/')) return '/diff';
  return ROUTES.has(path) ? path : 'other';
}
