import type { IncomingMessage } from 'node:http';
import { type RequestOptions, request } from 'node:https';
import type { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import { DotmeshError, errorObject } from '@dotmesh/core';
import {
  COMMIT_HEADER,
  type ProxyTarget,
  rawJsonResponse,
  STREAM_UPGRADE,
  switchingProtocols,
  type TransferProxy,
} from '@dotmesh/transfer';
import type { Caller } from '../dots/caller.ts';
import type { Logger } from '../log.ts';
import type { MasterNodes } from './master-nodes.ts';
import type { NodeTls } from './node-transport.ts';
import { CALLER_HEADER, encodeCaller, HOPS_HEADER } from './router.ts';
import type { ClusterView } from './view.ts';

/** Where another node serves the transfer requests passed on to it (as their caller). */
export const NODE_TRANSFER_PATH = '/node/v1/transfer';

/**
 * Pushes and pulls from another cluster may reach any node of this one (the original's
 * PushWrongNode / PullWrongNode): a `/transfer/v1` request about a branch another node masters
 * is passed on, streams included, to that node's endpoint (`/node/v1/transfer/<op>`, mutual
 * TLS), as the caller this node authenticated; the answer is piped back unchanged. An upgraded
 * commit stream (peer-streams.ts) is upgraded there too, and the two connections joined.
 */
export class ClusterTransferProxy implements TransferProxy<Caller> {
  readonly #view: ClusterView;
  readonly #masterNodes: MasterNodes;
  readonly #tls: NodeTls;
  readonly #idleTimeoutMs: () => number;
  readonly #logger: Logger;

  constructor(o: { view: ClusterView; masterNodes: MasterNodes; tls: NodeTls; idleTimeoutMs: () => number; logger: Logger }) {
    this.#view = o.view;
    this.#masterNodes = o.masterNodes;
    this.#tls = o.tls;
    this.#idleTimeoutMs = o.idleTimeoutMs;
    this.#logger = o.logger;
  }

  target(about: ProxyTarget): string | undefined {
    const fsId =
      about.fsId ??
      about.dotId ??
      (about.dotName ? this.#view.dotByName(about.dotName.namespace, about.dotName.name)?.id : undefined);
    if (fsId === undefined) return undefined;
    // A branch the cluster does not know (a new one, pushed): its dot's master branch decides.
    const known = this.#masterNodes.get(fsId) ?? (about.dotId ? this.#masterNodes.get(about.dotId) : undefined);
    if (!known || known.nodeId === this.#masterNodes.nodeId) return undefined;
    return known.nodeId;
  }

  async forward(nodeId: string, o: Parameters<TransferProxy<Caller>['forward']>[1]): Promise<void> {
    const up = this.#upstream(nodeId, o);
    if (up instanceof DotmeshError) return this.#fail(o.res, up);
    const idle = this.#idleTimeoutMs();
    await new Promise<void>((resolve) => {
      const req = request(
        {
          ...up,
          headers: {
            ...up.headers,
            'content-type': o.json ? 'application/json' : (o.req.headers['content-type'] ?? 'application/octet-stream'),
          },
        },
        (answer) => {
          o.res.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/json' });
          answer.socket.setTimeout(idle, () => answer.destroy());
          answer.on('error', () => o.res.destroy());
          answer.pipe(o.res);
          void finished(o.res)
            .catch(() => undefined)
            .finally(resolve);
        },
      );
      req.setTimeout(idle, () => req.destroy(new Error(`node ${nodeId} sent nothing for ${idle} ms`)));
      req.on('error', (e) => {
        this.#logger.warn({ err: e, node: nodeId, op: o.op }, 'could not pass a transfer request on');
        if (o.res.headersSent) o.res.destroy();
        else
          this.#fail(
            o.res,
            new DotmeshError('UNAVAILABLE', `cannot reach node ${nodeId}: ${e.message}`, { data: { node: nodeId } }),
          );
        resolve();
      });
      o.res.once('close', () => req.destroy());
      if (o.json) req.end(JSON.stringify(o.json));
      else {
        o.req.once('close', () => {
          if (!o.req.readableEnded) req.destroy(new Error('the sending server went away mid-stream'));
        });
        o.req.pipe(req);
      }
    });
  }

  async forwardUpgrade(nodeId: string, o: Parameters<TransferProxy<Caller>['forwardUpgrade']>[1]): Promise<void> {
    const up = this.#upstream(nodeId, o);
    if (up instanceof DotmeshError) return rawJsonResponse(o.socket, 503, { error: errorObject(up) });
    const idle = this.#idleTimeoutMs();
    await new Promise<void>((resolve) => {
      const req = request({ ...up, headers: { ...up.headers, connection: 'Upgrade', upgrade: STREAM_UPGRADE } });
      req.setTimeout(idle, () => req.destroy(new Error(`node ${nodeId} sent nothing for ${idle} ms`)));
      req.on('error', (e) => {
        this.#logger.warn({ err: e, node: nodeId, op: o.op }, 'could not pass a transfer stream on');
        const err = new DotmeshError('UNAVAILABLE', `cannot reach node ${nodeId}: ${e.message}`, { data: { node: nodeId } });
        rawJsonResponse(o.socket, 503, { error: errorObject(err) });
        resolve();
      });
      // A refusal: passed back as an ordinary answer.
      req.on('response', (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          o.socket.end(
            `HTTP/1.1 ${answer.statusCode ?? 502} Error\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
          );
          resolve();
        });
        answer.on('error', () => {
          o.socket.destroy();
          resolve();
        });
      });
      // Upgraded there: upgraded here, then every byte both ways until either side closes.
      req.on('upgrade', (_res, upstream: Duplex, head: Buffer) => {
        req.setTimeout(0);
        upstream.on('error', () => o.socket.destroy());
        o.socket.on('error', () => upstream.destroy());
        o.socket.write(switchingProtocols());
        if (head.length > 0) o.socket.write(head);
        upstream.pipe(o.socket);
        o.socket.pipe(upstream);
        const done = () => {
          upstream.destroy();
          o.socket.destroy();
          resolve();
        };
        upstream.once('close', done);
        o.socket.once('close', done);
      });
      req.end();
    });
  }

  /** The request to `nodeId`'s node endpoint for `o` (its TLS, path, caller), or why there is none. */
  #upstream(
    nodeId: string,
    o: { readonly op: string; readonly search: string; readonly req: IncomingMessage; readonly caller: Caller },
  ): RequestOptions | DotmeshError {
    const node = this.#view.node(nodeId);
    const address = node?.addresses[0];
    if (!node || address === undefined || node.clusterPort === 0) {
      return new DotmeshError('UNAVAILABLE', `node ${nodeId}, which masters this dot, is not live`, { data: { node: nodeId } });
    }
    const headers: Record<string, string> = { [CALLER_HEADER]: encodeCaller(o.caller), [HOPS_HEADER]: '1' };
    const commit = o.req.headers[COMMIT_HEADER];
    if (typeof commit === 'string') headers[COMMIT_HEADER] = commit;
    return {
      host: address.includes(':') ? `[${address}]` : address,
      port: node.clusterPort,
      path: `${NODE_TRANSFER_PATH}/${o.op}${o.search}`,
      method: o.req.method,
      agent: false,
      ca: this.#tls.ca,
      cert: this.#tls.cert,
      key: this.#tls.key,
      checkServerIdentity: (_h, cert) => (cert.subject?.CN === nodeId ? undefined : new Error(`the peer is not node ${nodeId}`)),
      headers,
    };
  }

  #fail(res: Parameters<TransferProxy<Caller>['forward']>[1]['res'], e: DotmeshError): void {
    res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: errorObject(e) }));
  }
}
