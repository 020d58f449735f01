import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { DotmeshError, errorObject } from '@dotmesh/core';
import { FLEX_MOUNT_PATH, FLEX_UNMOUNT_PATH, type FlexErrorReply } from '@dotmesh/rpc/flexvolume';
import { readBody } from '@dotmesh/rpc/http-body';
import type { Logger } from '../log.ts';
import { closeUnixSocket, listenUnixSocket } from '../unix-socket.ts';
import type { FlexMounts } from './mounts.ts';

const MAX_BODY_BYTES = 64 * 1024;

/**
 * The FlexVolume driver's socket (`dm.sock` beside the driver): HTTP on a unix socket, mode
 * 0600 in a root-owned directory — whoever can open it mounts any dot as admin, as with the
 * original's socket. A socket left by a killed server is replaced; one a live server answers
 * on is left alone (CONFLICT).
 */
export class FlexSocketServer {
  readonly #server: Server;
  readonly #socketPath: string;

  private constructor(server: Server, socketPath: string) {
    this.#server = server;
    this.#socketPath = socketPath;
  }

  static async listen(o: { socketPath: string; mounts: FlexMounts; logger: Logger }): Promise<FlexSocketServer> {
    const server = createServer((req, res) => void handle(req, res, o.mounts, o.logger));
    server.headersTimeout = 10_000;
    server.requestTimeout = 0; // a mount may wait for a handoff
    await listenUnixSocket(server, {
      socketPath: o.socketPath,
      mode: 0o600,
      what: 'FlexVolume',
      hint: 'stop the other dotmesh-server, or give this one another flexVolumeDir',
    });
    return new FlexSocketServer(server, o.socketPath);
  }

  async close(): Promise<void> {
    await closeUnixSocket(this.#server, this.#socketPath);
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, mounts: FlexMounts, logger: Logger): Promise<void> {
  const reply = (status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const path = (req.url ?? '/').split('?')[0];
  const action = path === FLEX_MOUNT_PATH ? 'mount' : path === FLEX_UNMOUNT_PATH ? 'unmount' : undefined;
  if (req.method !== 'POST' || action === undefined) {
    req.resume();
    reply(
      404,
      errorBody(new DotmeshError('UNKNOWN_METHOD', `no FlexVolume endpoint ${req.method} ${String(path).slice(0, 80)}`)),
    );
    return;
  }
  const started = Date.now();
  let body: unknown;
  try {
    body = JSON.parse(await readRequest(req));
    const result = action === 'mount' ? await mounts.mount(body) : await mounts.unmount(body);
    logger.info({ action, request: body, result, ms: Date.now() - started }, 'FlexVolume call');
    reply(200, result);
  } catch (e) {
    const error = errorBody(e);
    logger.warn({ action, request: body, err: error.Error, ms: Date.now() - started }, 'FlexVolume call refused');
    reply(error.Error.code === 'INTERNAL' ? 500 : 400, error);
  }
}

function errorBody(e: unknown): FlexErrorReply {
  return { Error: errorObject(e instanceof SyntaxError ? new DotmeshError('INVALID_ARGUMENT', 'the request is not JSON') : e) };
}

/** The body as text (at most MAX_BODY_BYTES; a longer or broken one is refused). */
function readRequest(req: IncomingMessage): Promise<string> {
  return readBody(req, MAX_BODY_BYTES).catch(() => {
    throw new DotmeshError('INVALID_ARGUMENT', `request body over ${MAX_BODY_BYTES} bytes, or cut off`);
  });
}
