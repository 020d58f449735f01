import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DotmeshError, errorFromObject, isDotmeshError } from '@dotmesh/core';
import type { Exec } from '@dotmesh/storage';
import type { Logger } from '../log.ts';
import { caPublicKeyHash, makeKeyAndCsr, pkiFiles } from '../tls/pki.ts';
import { type JoinFile, placeJoinFiles } from './join-files.ts';
import { JOIN_CA_PATH, JOIN_PATH, type JoinAnswer, type JoinRequest } from './join-issuer.ts';

/** Where a host joins: a node's node-to-node endpoint and the pin of the cluster's CA. */
export interface JoinTarget {
  /** `host:port` of a node's node-to-node endpoint (the cluster port). */
  readonly address: string;
  /** `sha256:<hex>` of the cluster CA's SubjectPublicKeyInfo. */
  readonly caHash: string;
}

/** The files a join wrote in `<stateDir>/tls/`, and where the store is. */
export interface Joined {
  readonly etcd: {
    readonly endpoints: readonly string[];
    readonly prefix: string;
    readonly caFile: string | null;
    /** Dotmesh runs the cluster's etcd: this node got its etcd certificate (`tls/etcd.pem`, `etcd-key.pem`). */
    readonly managed: boolean;
  };
}

export const CA_HASH_RE = /^sha256:[0-9a-f]{64}$/;

/**
 * Joins this host to a cluster, at start-up, as node `nodeId` (its pool's id):
 * 1. fetches the CA the endpoint presents (nothing is sent but the request for it) and checks
 *    its public key against the pin — a mismatch (a server in the middle, another cluster) is
 *    refused before anything else; a host whose state already holds another cluster's CA (a
 *    pool of another cluster) is refused too;
 * 2. makes its keys (they never leave this host) and certificate requests, and sends them with
 *    the token over TLS verified against that CA;
 * 3. checks what it got (certificates of that CA for its keys) and writes them in
 *    `<stateDir>/tls/` (ca.pem, node.pem and node-key.pem, server.pem and server-key.pem when it
 *    serves HTTPS, etcd.pem and etcd-key.pem when the cluster runs managed etcd, etcd-ca.pem
 *    when the store's etcd has a CA of its own).
 * Errors the issuing node answers come back with their code, message and hint.
 */
export async function joinCluster(o: {
  readonly target: JoinTarget;
  readonly token: string;
  readonly nodeId: string;
  readonly stateDir: string;
  readonly exec: Exec;
  /** The addresses the other nodes reach this node at (its node certificate's SANs). */
  readonly nodeAddresses: readonly string[];
  /** The names its HTTPS certificate covers; null: it serves no HTTPS. */
  readonly httpsNames: readonly string[] | null;
  readonly timeoutMs?: number;
}): Promise<Joined> {
  const { host, port } = parseJoinAddress(o.target.address);
  if (!CA_HASH_RE.test(o.target.caHash)) {
    throw new DotmeshError('INVALID_ARGUMENT', `${JSON.stringify(o.target.caHash.slice(0, 80))} is not a CA pin`, {
      hint: "give the sha256:<64 hex digits> that 'dm cluster token create' printed",
    });
  }
  const timeoutMs = o.timeoutMs ?? 30_000;
  const caPem = (await call({ host, port, path: JOIN_CA_PATH, method: 'GET', ca: null, timeoutMs })).text;
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(caPem);
  } catch {
    throw new DotmeshError('PERMISSION_DENIED', `${o.target.address} presents no CA certificate: it is not a node of a cluster`);
  }
  const presented = caPublicKeyHash(ca);
  if (!ca.ca || presented !== o.target.caHash) {
    throw new DotmeshError(
      'PERMISSION_DENIED',
      `the CA that ${o.target.address} presents (${presented}) is not the pinned one (${o.target.caHash}): refusing to join`,
      {
        hint: 'a server in the middle, or the address of another cluster: check the address, and take the pin from the cluster itself (dm cluster token create on one of its nodes)',
        data: { presented, pinned: o.target.caHash },
      },
    );
  }
  const f = pkiFiles(o.stateDir);
  await mkdir(f.dir, { recursive: true, mode: 0o700 });
  await chmod(f.dir, 0o700);
  const mine = await readFile(f.caCert).then(
    (pem) => new X509Certificate(pem),
    () => null,
  );
  if (mine && caPublicKeyHash(mine) !== o.target.caHash) {
    throw new DotmeshError(
      'CONFLICT',
      `this host's node belongs to another cluster (its CA in ${f.caCert} is ${caPublicKeyHash(mine)}): refusing to join ${o.target.caHash}`,
      {
        hint: 'a host belongs to one cluster: remove it from the other one first (dm cluster reset on it, which destroys its dots), or use another --use-pool-dir',
      },
    );
  }
  const nodeKey = join(f.dir, 'node-key.pem.join');
  const httpsKey = join(f.dir, 'server-key.pem.join');
  const etcdKey = join(f.dir, 'etcd-key.pem.join');
  /** The keys made for the requests, removed unless they were placed. */
  const keys = [nodeKey, httpsKey, etcdKey];
  try {
    const body: JoinRequest = {
      Token: o.token,
      NodeId: o.nodeId,
      NodeCsr: await makeKeyAndCsr(o.exec, nodeKey, o.nodeId),
      Addresses: o.nodeAddresses,
      HttpsCsr: o.httpsNames === null ? null : await makeKeyAndCsr(o.exec, httpsKey, o.nodeId),
      HttpsNames: o.httpsNames ?? [],
      EtcdCsr: await makeKeyAndCsr(o.exec, etcdKey, o.nodeId),
    };
    const reply = await call({ host, port, path: JOIN_PATH, method: 'POST', ca: caPem, body: JSON.stringify(body), timeoutMs });
    const answer = JSON.parse(reply.text) as JoinAnswer;
    await checkIssued(answer.NodeCert, ca, nodeKey, 'node');
    if (o.httpsNames !== null) await checkIssued(answer.HttpsCert ?? '', ca, httpsKey, 'HTTPS');
    const managed = answer.Etcd.Managed === true && typeof answer.EtcdCert === 'string';
    if (managed) await checkIssued(answer.EtcdCert ?? '', ca, etcdKey, 'etcd');
    // A managed etcd's CA is the cluster CA.
    const caFile = managed ? f.caCert : answer.Etcd.CaCert ? join(f.dir, 'etcd-ca.pem') : null;
    // Every file goes in place at once (a kill midway is finished by the next start).
    const dir = (name: string) => join(f.dir, name);
    const files: JoinFile[] = [
      [f.caCert, caPem],
      [dir('node.pem'), answer.NodeCert],
      [dir('node-key.pem'), null],
      ...(o.httpsNames !== null && answer.HttpsCert
        ? ([
            [f.cert, answer.HttpsCert],
            [f.key, null],
          ] as const)
        : []),
      ...(managed
        ? ([
            [dir('etcd.pem'), answer.EtcdCert ?? ''],
            [dir('etcd-key.pem'), null],
          ] as const)
        : []),
      ...(!managed && caFile && answer.Etcd.CaCert ? ([[caFile, answer.Etcd.CaCert]] as const) : []),
    ];
    await placeJoinFiles(o.stateDir, files);
    keys.length = 0; // placed
    return { etcd: { endpoints: answer.Etcd.Endpoints, prefix: answer.Etcd.Prefix, caFile, managed } };
  } finally {
    for (const file of keys) await rm(file, { force: true });
  }
}

/** Whether this host's state holds the cluster CA of `caHash` (its pool is a node of that cluster). */
export async function holdsClusterCa(stateDir: string, caHash: string): Promise<boolean> {
  const pem = await readFile(pkiFiles(stateDir).caCert).catch(() => null);
  if (pem === null) return false;
  try {
    return caPublicKeyHash(new X509Certificate(pem)) === caHash;
  } catch {
    return false;
  }
}

/** How long a rejoin tries again while no node of the cluster answers. */
const REJOIN_UNREACHABLE_MS = 120_000;

/**
 * A rejoin: a pool of this cluster (its state holds the pinned CA) joins again as its node —
 * at a new address, when it moved to another host. The join endpoint refuses while the node is
 * still live elsewhere (its earlier holder's lease has not expired: a host killed moments ago);
 * that is tried again until `leaseTtlSeconds` (plus one) passed since the first refusal, then
 * refused (CONFLICT, naming where the node lives: a copy of a running pool). A cluster that does
 * not answer (UNAVAILABLE) is tried again for up to 120 s. Any other refusal ends it at once.
 */
export async function rejoinCluster(
  o: Parameters<typeof joinCluster>[0] & { readonly leaseTtlSeconds: number; readonly logger: Logger; readonly pollMs?: number },
): Promise<Joined> {
  const unreachableUntil = Date.now() + REJOIN_UNREACHABLE_MS;
  let liveUntil: number | undefined;
  for (;;) {
    try {
      return await joinCluster(o);
    } catch (e) {
      if (!isDotmeshError(e)) throw e;
      const live = e.code === 'CONFLICT' && (e.data as { node?: unknown } | undefined)?.node === o.nodeId;
      if (live) {
        // etcd may give a lease a little longer than its TTL (a leader change renews it): one more second.
        liveUntil ??= Date.now() + (o.leaseTtlSeconds + 1) * 1000;
        if (Date.now() >= liveUntil) {
          throw new DotmeshError('CONFLICT', `${e.message} (still live after ${o.leaseTtlSeconds + 1} s: it runs)`, {
            hint: 'stop the server that runs this node elsewhere first; a pool is served by one host at a time',
            data: { node: o.nodeId },
          });
        }
        o.logger.warn({ node: o.nodeId, why: e.message }, 'this node is still live elsewhere: waiting for its lease to expire');
      } else if (
        e.code === 'UNAVAILABLE' &&
        !/does not hold the cluster CA key/.test(e.message) &&
        Date.now() < unreachableUntil
      ) {
        o.logger.warn({ why: e.message }, 'the cluster does not answer the rejoin: trying again');
      } else {
        throw e;
      }
      await sleep(o.pollMs ?? 1000);
    }
  }
}

/** `host:port` (an IPv6 address in brackets). */
export function parseJoinAddress(address: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) {
    throw new DotmeshError('INVALID_ARGUMENT', `${JSON.stringify(address.slice(0, 100))} is not host:port`, {
      hint: "give a node's address and cluster port, as 'dm cluster token create' printed them (e.g. 10.0.0.1:32609)",
    });
  }
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  if (m[1]!.startsWith('[') && isIP(host) !== 6) throw new DotmeshError('INVALID_ARGUMENT', `${address} is not host:port`);
  return { host, port };
}

async function checkIssued(pem: string, ca: X509Certificate, keyFile: string, what: string): Promise<void> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    throw new DotmeshError('INTERNAL', `the joined node sent no ${what} certificate`);
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey) || !cert.checkPrivateKey(createPrivateKey(await readFile(keyFile)))) {
    throw new DotmeshError('INTERNAL', `the ${what} certificate the cluster sent is not of its CA for this host's key`);
  }
}

function call(o: {
  host: string;
  port: number;
  path: string;
  method: 'GET' | 'POST';
  /** null: the peer is not verified (only to fetch the CA that is then checked against the pin). */
  ca: string | null;
  body?: string;
  timeoutMs: number;
}): Promise<{ text: string }> {
  const where = `${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: o.host,
        port: o.port,
        path: o.path,
        method: o.method,
        ...(o.ca === null ? { rejectUnauthorized: false } : { ca: o.ca, checkServerIdentity: () => undefined }),
        headers: o.body === undefined ? {} : { 'Content-Type': 'application/json' },
        timeout: o.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200) return resolve({ text });
          let raw: unknown = null;
          try {
            raw = JSON.parse(text);
          } catch {
            // a plain-text refusal
          }
          reject(
            errorFromObject(raw, {
              prefix: `joining through ${where}: `,
              fallbackMessage: `HTTP ${res.statusCode}: ${text.trim().slice(0, 200)}`,
            }),
          );
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', (e) =>
      reject(
        new DotmeshError('UNAVAILABLE', `cannot reach the cluster at ${where}: ${e.message}`, {
          hint: "give a node's address and cluster port (32609 unless changed) that this host reaches",
        }),
      ),
    );
    req.end(o.body);
  });
}
