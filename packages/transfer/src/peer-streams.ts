import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { DotmeshError, ERROR_CODES, isErrorCode } from '@dotmesh/core';
import { isPlainSocket } from '@dotmesh/storage';
import { DATA_TRANSPORT_HEADER, type DataConnections, dataLine, TLS_PUMP_TRANSPORT } from './data-connections.ts';
import type { TransferCaller } from './host.ts';
import { errorBody, exportParams, type PeerRoutesDeps, pushedCommit } from './peer-routes.ts';
import { PROTOCOL_PATH } from './peer-side.ts';
import type { CommitStream, TransferSide } from './side.ts';
import {
  KEEPALIVE_MS,
  rawJsonResponse,
  STREAM_GO,
  STREAM_KEEPALIVE,
  STREAM_UPGRADE,
  switchingProtocols,
} from './stream-protocol.ts';

/** What a stream's two ends need besides the side. */
type StreamDeps = Pick<PeerRoutesDeps<TransferCaller>, 'logger' | 'idleTimeoutMs'>;

/**
 * Pushes over HTTPS whose sender asks for it (DATA_TRANSPORT_HEADER) take their stream on a
 * data connection of the pumps' own, registered here (data-connections.ts). Only for a server
 * that receives commits itself with a driver that reads sockets itself.
 */
export interface DataConnectionsDeps {
  readonly dataConnections?: DataConnections;
}

/** The 'upgrade' listener of a server: the request, its connection, bytes read past the headers. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => Promise<void>;

/**
 * The commit streams of `/transfer/v1` on upgraded connections (stream-protocol.ts): push
 * (`POST receive`) and pull (`GET export`), with the same authentication, rights, routing to
 * another node and errors as the plain endpoints (peer-routes.ts). On a plain TCP connection
 * the storage driver's own process reads or writes the socket.
 */
export function createPeerStreams<C extends TransferCaller>(deps: PeerRoutesDeps<C> & DataConnectionsDeps): UpgradeHandler {
  return async (req, socket, head) => {
    socket.on('error', () => {}); // a dead peer is seen by whoever reads or writes
    const url = new URL(req.url ?? '/', 'http://x');
    const op = url.pathname.slice(PROTOCOL_PATH.length + 1);
    try {
      if ((req.headers.upgrade ?? '').toLowerCase() !== STREAM_UPGRADE) {
        throw new DotmeshError('UNSUPPORTED', `no upgrade to ${String(req.headers.upgrade).slice(0, 50)} here`);
      }
      const caller = await deps.authenticate(req);
      if (!caller) return rawJsonResponse(socket, 401, { error: { code: 'UNAUTHENTICATED', message: 'Unauthorized.' } });
      // The client writes only after our go byte: anything earlier breaks the protocol.
      if (head.length > 0) throw new DotmeshError('INVALID_ARGUMENT', 'the stream must start after the go byte');
      const proxy = deps.proxy;
      if (req.method === 'POST' && op === 'receive') {
        const commit = pushedCommit(req);
        const node = proxy?.target({ fsId: commit.targetFsId, dotId: commit.volume.dot.id });
        if (node && proxy) return await proxy.forwardUpgrade(node, { op, search: url.search, req, socket, caller });
        const data =
          deps.dataConnections && 'encrypted' in req.socket && req.headers[DATA_TRANSPORT_HEADER] === TLS_PUMP_TRANSPORT
            ? deps.dataConnections
            : undefined;
        return await receive(deps.sideFor(caller), commit, socket, deps, data);
      }
      if (req.method === 'GET' && op === 'export') {
        const p = exportParams(url);
        const node = proxy?.target({ fsId: p.fsId });
        if (node && proxy) return await proxy.forwardUpgrade(node, { op, search: url.search, req, socket, caller });
        return await exportTo(deps.sideFor(caller), p, socket, deps);
      }
      throw new DotmeshError('UNKNOWN_METHOD', `no transfer stream ${req.method} ${op.slice(0, 100)}`);
    } catch (e) {
      const body = errorBody(e, deps.logger, op);
      rawJsonResponse(socket, isErrorCode(body.error.code) ? ERROR_CODES[body.error.code].httpStatus : 500, body);
    }
  };
}

/**
 * Push: 101, keep-alives, the go byte once the driver owns the connection, the answer, then
 * whatever the client still sends is read and dropped until it closes. With `data`: the 101
 * says so, and instead of the go byte the stream's id and key go out once the driver wants the
 * stream, which then arrives on its data connection (waited for up to the idle timeout).
 */
async function receive(
  side: TransferSide,
  commit: ReturnType<typeof pushedCommit>,
  socket: Duplex,
  deps: StreamDeps,
  data: DataConnections | undefined,
): Promise<void> {
  socket.write(switchingProtocols(data ? { [DATA_TRANSPORT_HEADER]: TLS_PUMP_TRANSPORT } : {}));
  const keepalive = setInterval(() => {
    if (!socket.writableEnded) socket.write(STREAM_KEEPALIVE);
  }, KEEPALIVE_MS);
  let go = false;
  const start = () => {
    if (go) return;
    go = true;
    socket.write(STREAM_GO);
  };
  let expected: ReturnType<DataConnections['expect']> | undefined;
  const stream: CommitStream = data
    ? {
        readable: () => {
          throw new Error('this stream arrives on a data connection');
        },
        data: () => {
          if (expected) throw new Error('a data connection is asked for once');
          expected = data.expect(deps.idleTimeoutMs());
          socket.write(`${dataLine(expected.id, expected.key)}${STREAM_GO}`);
          const id = expected.id;
          return expected.connection.then((c) => {
            deps.logger.info({ stream: id }, 'commit stream arriving on a data connection');
            return c;
          });
        },
        close: () => {},
      }
    : {
        readable: () => {
          start();
          return socket;
        },
        socket: { socket, start },
        close: () => {},
      };
  let answer: unknown;
  try {
    await side.receiveCommit(commit, stream, () => {});
    answer = { ok: true };
  } catch (e) {
    answer = errorBody(e, deps.logger, 'receive');
  } finally {
    clearInterval(keepalive);
    expected?.cancel();
  }
  if (socket.destroyed) return;
  socket.unpipe();
  socket.end(JSON.stringify(answer));
  // Read what the client still sends until it closes (it stops once it has the answer), so the
  // answer is not lost to a reset; a client that never closes is dropped.
  idleDrop(socket as Socket, deps.idleTimeoutMs(), 'the client did not close after the answer');
  socket.on('end', () => socket.destroy());
  socket.resume();
}

/** Pull: 101, then the stream once the client sent the go byte, then the end of the connection. */
async function exportTo(side: TransferSide, p: ReturnType<typeof exportParams>, socket: Duplex, deps: StreamDeps): Promise<void> {
  const exported = await side.exportCommit(p.fsId, p.commitId, p.parent);
  const s = socket as Socket;
  const idleMs = deps.idleTimeoutMs();
  try {
    socket.write(switchingProtocols());
    await new Promise<void>((resolve, reject) => {
      s.setTimeout(idleMs, () => reject(new Error('the client never asked for the stream')));
      s.once('data', (d: Buffer) => (d.toString('latin1') === STREAM_GO ? resolve() : reject(new Error('protocol error'))));
      s.once('close', () => reject(new Error('the client went away')));
      s.resume();
    });
    s.pause();
    s.setTimeout(0);
    if (exported.writeTo && isPlainSocket(socket)) await exported.writeTo(socket, { idleTimeoutMs: idleMs });
    else await pipeWhole(exported.readable(), s, idleMs);
    socket.end();
  } catch (e) {
    deps.logger.info({ err: (e as Error).message }, 'transfer export stream ended early');
    socket.destroy(); // the client sees a stream without its end frame
  } finally {
    exported.close();
  }
}

/** Pipes `stream` into `socket` (not ending it); a socket that takes nothing for `idleMs` fails it. */
function pipeWhole(stream: Readable, socket: Socket, idleMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.setTimeout(idleMs, () => socket.destroy(new Error('the client stopped reading')));
    stream.once('error', reject);
    stream.once('end', () => resolve());
    socket.once('close', () => reject(new Error('the client went away')));
    stream.pipe(socket, { end: false });
  });
}

/** Destroys `socket` after `idleMs` without a byte either way, with `why`. */
function idleDrop(socket: Socket, idleMs: number, why: string): void {
  socket.setTimeout(idleMs, () => socket.destroy(new DotmeshError('UNAVAILABLE', why)));
}
