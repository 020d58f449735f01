import type { IncomingHttpHeaders, IncomingMessage, RequestListener } from 'node:http';
import { createServer, request, type Server } from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { DotmeshError } from '@dotmesh/core';
import type { NodeTls } from '@dotmesh/rpc/tls';
import type { ClusterView } from './view.ts';

export type { NodeTls };

/**
 * The node-to-node endpoint: HTTPS that asks every client for a certificate of the cluster CA
 * (mutual TLS). The handler learns the calling node's id from its certificate (`peerNodeId`,
 * undefined without a valid one) and serves a caller without one only the join routes; no
 * password or API key ever crosses between nodes.
 */
export function createNodeServer(tls: NodeTls, handler: RequestListener): Server {
  return createServer(
    { ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    handler,
  );
}

/** The node id (certificate CN) of the node calling the node endpoint, or undefined. */
export function peerNodeId(req: IncomingMessage): string | undefined {
  const socket = req.socket as TLSSocket;
  if (!socket.authorized) return undefined;
  return commonName(socket.getPeerCertificate());
}

function commonName(cert: PeerCertificate | undefined): string | undefined {
  const cn = cert?.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

export interface NodeResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

export interface NodeClientTimeouts {
  /** Longest silence on an established call (a forwarded call may run long: a handoff, a sync commit). */
  readonly idleMs?: number;
  /**
   * Longest wait for the connection and its TLS handshake. A node cut off by a partition (its
   * address still advertised until its lease expires) drops packets: without this a call to it
   * waits for the kernel's TCP connect timeout (about two minutes).
   */
  readonly connectMs?: number;
}

/**
 * Calls another node's endpoint over mutual TLS, at the address and port it advertises
 * (`servers/addresses/<id>`). The other side must present a certificate of the cluster CA whose
 * CN is the node id dialled, so a request never reaches the wrong node.
 */
export class NodeClient {
  readonly #view: ClusterView;
  readonly #tls: NodeTls;
  readonly #idleMs: number;
  readonly #connectMs: number;

  constructor(view: ClusterView, tls: NodeTls, timeouts: NodeClientTimeouts = {}) {
    this.#view = view;
    this.#tls = tls;
    this.#idleMs = timeouts.idleMs ?? 120_000;
    this.#connectMs = timeouts.connectMs ?? 10_000;
  }

  /** POSTs `body` to `path` on `nodeId`; UNAVAILABLE when the node cannot be reached. */
  post(nodeId: string, path: string, body: string, headers: Record<string, string> = {}): Promise<NodeResponse> {
    const node = this.#view.node(nodeId);
    const address = node?.addresses[0];
    if (!node || address === undefined || node.clusterPort === 0) {
      return Promise.reject(
        new DotmeshError('UNAVAILABLE', `node ${nodeId} is not live (it advertises no address)`, {
          hint: 'start its dotmesh-server, or move its branches to a live node (dm dot smash-branch-master)',
          data: { node: nodeId },
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: address,
          port: node.clusterPort,
          path,
          method: 'POST',
          ca: this.#tls.ca,
          cert: this.#tls.cert,
          key: this.#tls.key,
          minVersion: 'TLSv1.2',
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers },
          checkServerIdentity: (_host, cert) =>
            commonName(cert) === nodeId
              ? undefined
              : new Error(`the node at ${address}:${node.clusterPort} is ${commonName(cert) ?? 'unnamed'}, not ${nodeId}`),
          timeout: this.#idleMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', (e) => reject(unreachable(nodeId, e)));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#idleMs} ms`)));
      req.on('socket', (socket) => {
        if (!socket.connecting) return; // a kept-alive connection, already up
        const timer = setTimeout(
          () => req.destroy(new Error(`no TLS connection to ${address}:${node.clusterPort} within ${this.#connectMs} ms`)),
          this.#connectMs,
        );
        socket.once('secureConnect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.on('error', (e) => reject(unreachable(nodeId, e)));
      req.end(body);
    });
  }
}

function unreachable(nodeId: string, e: Error): DotmeshError {
  return new DotmeshError('UNAVAILABLE', `cannot reach node ${nodeId}: ${e.message}`, {
    hint: 'check that its dotmesh-server runs and that this node can reach its cluster port',
    data: { node: nodeId },
    cause: e,
  });
}
