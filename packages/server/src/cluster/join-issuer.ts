import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { DotmeshError, ERROR_CODES, errorObject, isDotmeshError } from '@dotmesh/core';
import { readBody } from '@dotmesh/rpc/http-body';
import type { Logger } from '../log.ts';
import { LOOPBACK_NAMES } from '../tls/pki.ts';
import type { JoinTokens } from './join-tokens.ts';
import type { ClusterView } from './view.ts';

/** The join routes of the node-to-node endpoint, served to hosts that have no certificate yet. */
export const JOIN_PATH_PREFIX = '/join/v1/';
export const JOIN_CA_PATH = '/join/v1/ca';
export const JOIN_PATH = '/join/v1/node';
const MAX_JOIN_BODY_BYTES = 64 * 1024;

/** What a joining host sends (after it checked the CA this endpoint presented against its pin). */
export interface JoinRequest {
  readonly Token: string;
  /** Its pool's id: the node id its certificate will name. */
  readonly NodeId: string;
  /** PEM request for its node-to-node certificate, and the addresses the other nodes dial. */
  readonly NodeCsr: string;
  readonly Addresses: readonly string[];
  /** PEM request for its HTTPS API certificate and the names it covers (null: it serves no HTTPS). */
  readonly HttpsCsr: string | null;
  readonly HttpsNames: readonly string[];
  /**
   * PEM request for its etcd certificate (client of the store, and its own member's peer and
   * client certificate when it becomes one); used when the cluster runs managed etcd.
   */
  readonly EtcdCsr: string | null;
}

/** What it gets: certificates of the cluster CA and where the store is (never a key, password or API key). */
export interface JoinAnswer {
  readonly CaCert: string;
  readonly NodeCert: string;
  readonly HttpsCert: string | null;
  /** Its etcd certificate (CN = its node id, for its addresses and loopback); null: the cluster's etcd is not managed. */
  readonly EtcdCert: string | null;
  readonly Etcd: JoinEtcd;
}

/** Where the store is. `Managed`: Dotmesh runs the etcd members (TLS with the cluster CA). */
export interface JoinEtcd {
  readonly Endpoints: readonly string[];
  readonly Prefix: string;
  readonly CaCert: string | null;
  readonly Managed: boolean;
}

export interface JoinIssuerDeps {
  readonly tokens: JoinTokens;
  readonly view: ClusterView;
  readonly caPem: string;
  /** Whether this node holds the CA key (only such a node lets hosts join). */
  readonly canSign: () => Promise<boolean>;
  /** Signs a request with the cluster CA (tls/pki.ts signCsr). */
  readonly sign: (o: { csrPem: string; cn: string; names: readonly string[]; usage: string }) => Promise<string>;
  /** Where the store is now (a managed etcd's members change as hosts join). */
  readonly etcd: () => Promise<JoinEtcd>;
  readonly logger: Logger;
}

/**
 * `GET /join/v1/ca`: the cluster CA certificate (public; the joiner checks it against the
 * `sha256:` pin it was given before it sends anything). `POST /join/v1/node`: a join. Checked in
 * this order, so a refused join changes nothing: the request's shape, that this node holds the
 * CA key, that no live node has the id (a pool whose node's lease expired rejoins as that node),
 * then the token is used (one compare-and-swap) and the requests signed. Errors are JSON
 * `{code, message, hint}` with the code's HTTP status.
 */
export async function serveJoin(deps: JoinIssuerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    if (req.url === JOIN_CA_PATH && req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'application/x-pem-file' }).end(deps.caPem);
      return;
    }
    if (req.url !== JOIN_PATH || req.method !== 'POST') {
      throw new DotmeshError('INVALID_ARGUMENT', `no join route ${req.method} ${(req.url ?? '').slice(0, 100)}`);
    }
    let body: string;
    try {
      body = await readBody(req, MAX_JOIN_BODY_BYTES);
    } catch {
      throw new DotmeshError('INVALID_ARGUMENT', 'the join request is too large');
    }
    const answer = await join(deps, parseJoinRequest(body), req.socket.remoteAddress ?? '?');
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' }).end(JSON.stringify(answer));
  } catch (e) {
    const err = isDotmeshError(e) ? e : new DotmeshError('INTERNAL', 'the join failed on this node (see its log)');
    if (!isDotmeshError(e)) deps.logger.error({ err: e }, 'join failed');
    const status = ERROR_CODES[err.code].httpStatus;
    if (!res.headersSent)
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' }).end(JSON.stringify(errorObject(err)));
  }
}

async function join(deps: JoinIssuerDeps, r: JoinRequest, from: string): Promise<JoinAnswer> {
  if (!(await deps.canSign())) {
    throw new DotmeshError('UNAVAILABLE', 'this node does not hold the cluster CA key, so it cannot let a host join', {
      hint: 'join through the node where the cluster was made (dm cluster init), or copy the CA key to this node first (dm cluster copy-ca)',
    });
  }
  const live = deps.view.node(r.NodeId);
  if (live) {
    throw new DotmeshError(
      'CONFLICT',
      `node id ${r.NodeId} is already live at ${live.addresses.join(',')}: the joining pool's id clashes with a running node`,
      {
        hint: 'a host joins once; a copied pool cannot join beside its original (a pool whose node is gone joins again once its lease expired)',
        data: { node: r.NodeId },
      },
    );
  }
  await deps.tokens.use(r.Token);
  const NodeCert = await deps.sign({ csrPem: r.NodeCsr, cn: r.NodeId, names: r.Addresses, usage: 'serverAuth,clientAuth' });
  const HttpsCert =
    r.HttpsCsr === null ? null : await deps.sign({ csrPem: r.HttpsCsr, cn: r.NodeId, names: r.HttpsNames, usage: 'serverAuth' });
  const etcd = await deps.etcd();
  const EtcdCert =
    etcd.Managed && r.EtcdCsr !== null
      ? await deps.sign({
          csrPem: r.EtcdCsr,
          cn: r.NodeId,
          names: [...new Set([...r.Addresses, ...LOOPBACK_NAMES])],
          usage: 'serverAuth,clientAuth',
        })
      : null;
  deps.logger.info({ node: r.NodeId, from, addresses: r.Addresses }, 'a host joined the cluster: issued its certificates');
  return { CaCert: deps.caPem, NodeCert, HttpsCert, EtcdCert, Etcd: etcd };
}

const NODE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const NAME_RE = /^[0-9A-Za-z.:*_-]{1,253}$/;
const MAX_CSR_CHARS = 8192;

/** Validates a join request's JSON (INVALID_ARGUMENT naming the field). */
export function parseJoinRequest(body: string): JoinRequest {
  const bad = (why: string) => new DotmeshError('INVALID_ARGUMENT', `invalid join request: ${why}`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(body) as Record<string, unknown>;
  } catch {
    throw bad('not JSON');
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad('not a JSON object');
  const { Token, NodeId, NodeCsr, Addresses, HttpsCsr, HttpsNames, EtcdCsr } = raw;
  if (typeof Token !== 'string' || Token.length > 100) throw bad('Token must be a string');
  if (typeof NodeId !== 'string' || !NODE_ID_RE.test(NodeId)) throw bad('NodeId must be a node id ([A-Za-z0-9_-], 1-64)');
  const csr = (v: unknown, field: string) => {
    if (typeof v !== 'string' || v.length > MAX_CSR_CHARS || !v.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
      throw bad(`${field} must be a PEM certificate request`);
    }
    return v;
  };
  const names = (v: unknown, field: string, ok: (n: string) => boolean) => {
    if (!Array.isArray(v) || v.length > 64 || !v.every((n) => typeof n === 'string' && ok(n))) {
      throw bad(`${field} must be a list of at most 64 names`);
    }
    return v as string[];
  };
  const addresses = names(Addresses, 'Addresses', (a) => isIP(a) !== 0);
  if (addresses.length === 0) throw bad('Addresses must name the address the other nodes reach the node at');
  return {
    Token,
    NodeId,
    NodeCsr: csr(NodeCsr, 'NodeCsr'),
    Addresses: addresses,
    HttpsCsr: HttpsCsr === null || HttpsCsr === undefined ? null : csr(HttpsCsr, 'HttpsCsr'),
    HttpsNames: HttpsNames === undefined ? [] : names(HttpsNames, 'HttpsNames', (n) => NAME_RE.test(n)),
    EtcdCsr: EtcdCsr === null || EtcdCsr === undefined ? null : csr(EtcdCsr, 'EtcdCsr'),
  };
}
