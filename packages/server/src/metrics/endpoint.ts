import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import type { ServerMetrics } from './metrics.ts';

/** GET /metrics (no authentication, as the original): the Prometheus text format. */
export function createMetricsEndpoint(metrics: ServerMetrics, logger: Logger) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'Content-Type': 'text/plain; charset=utf-8', Allow: 'GET, HEAD' }).end('GET required\n');
      return;
    }
    try {
      const { contentType, body } = await metrics.text();
      res.writeHead(200, { 'Content-Type': contentType }).end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      logger.error({ err }, 'metrics: scrape failed');
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
    }
  };
}
