import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import { closeUnixSocket, listenUnixSocket } from '../unix-socket.ts';
import type { PluginMethod } from './volume-plugin.ts';

/** Docker's content type for plugin calls (v1.2 of the plugin API). */
const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
const MAX_BODY_BYTES = 64 * 1024;

/**
 * The legacy plugin endpoint: HTTP on a unix socket, `POST /<Method>` with a JSON body (as
 * dockerd sends them to `/run/docker/plugins/<name>.sock`). A socket left by a killed server
 * is replaced; one another live server still answers on is left alone (CONFLICT).
 */
export class PluginSocketServer {
  readonly #server: Server;
  readonly #socketPath: string;

  private constructor(server: Server, socketPath: string) {
    this.#server = server;
    this.#socketPath = socketPath;
  }

  static async listen(o: {
    socketPath: string;
    methods: Readonly<Record<string, PluginMethod>>;
    logger: Logger;
  }): Promise<PluginSocketServer> {
    const server = createServer((req, res) => void handle(req, res, o.methods, o.logger));
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    await listenUnixSocket(server, {
      socketPath: o.socketPath,
      mode: 0o660,
      what: 'Docker plugin',
      hint: 'stop the other dotmesh-server, or give this one another dockerPluginSocket',
    });
    return new PluginSocketServer(server, o.socketPath);
  }

  async close(): Promise<void> {
    await closeUnixSocket(this.#server, this.#socketPath);
  }
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  methods: Readonly<Record<string, PluginMethod>>,
  logger: Logger,
): Promise<void> {
  const reply = (status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': PLUGIN_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const name = (req.url ?? '/').split('?')[0]?.slice(1) ?? '';
  const method = Object.hasOwn(methods, name) ? methods[name] : undefined;
  if (req.method !== 'POST' || method === undefined) {
    req.resume();
    reply(404, {
      Err: `unknown plugin endpoint ${req.method} /${name.slice(0, 80)}: the dm driver implements Plugin.Activate and VolumeDriver.*`,
    });
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      reply(413, { Err: `request body over ${MAX_BODY_BYTES} bytes` });
      req.destroy();
      return;
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown = {};
  if (text.trim() !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      reply(400, { Err: 'request body is not JSON' });
      return;
    }
  }
  if (body === null) body = {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    reply(400, { Err: 'request body must be a JSON object' });
    return;
  }
  const started = Date.now();
  const result = await method(body as Record<string, unknown>);
  const ms = Date.now() - started;
  if (typeof result.Err === 'string' && result.Err !== '')
    logger.warn({ method: name, err: result.Err, ms }, 'docker plugin call refused');
  else if (name !== 'VolumeDriver.Get' && name !== 'VolumeDriver.List')
    logger.info({ method: name, volume: (body as { Name?: unknown }).Name, ms }, 'docker plugin call');
  reply(200, result);
}
