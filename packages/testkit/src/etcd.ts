import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { Cleanup } from './cleanup.ts';
import { freePorts } from './ports.ts';
import { spawnTracked, type TrackedProcess, waitFor } from './process.ts';
import { makeTestCa } from './test-ca.ts';
import { makeTempDir } from './tmp.ts';

/**
 * A real single-member etcd (Debian's `etcd`, 3.4) for tests: its data dir under the test
 * root, client and peer ports free on 127.0.0.1, optionally TLS with client-certificate auth
 * (a throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with the
 * openssl CLI). Limits are raised to what the Store contract needs (4 MiB values, large
 * transactions). Everything is removed by `cleanup`.
 */
export interface EtcdProcess {
  readonly endpoints: string[];
  readonly dataDir: string;
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly caPem?: Buffer;
  readonly certPem?: Buffer;
  readonly keyPem?: Buffer;
  /** The current process (changes after `start()`). */
  readonly pid: number;
  /** Graceful stop (SIGTERM); resolves once exited. */
  stop(): Promise<void>;
  /** SIGKILL; resolves once exited. */
  kill9(): Promise<void>;
  /** Starts etcd again on the same data dir and ports (after stop or kill9); resolves once healthy. */
  start(): Promise<void>;
  output(): string;
}

export interface StartEtcdOptions {
  readonly cleanup: Cleanup;
  readonly tls?: boolean;
  /**
   * Raise etcd's request limit to 8 MiB, for the store contract's 4 MiB values (the store's
   * conformance suite). Servers run on etcd's defaults, so their tests leave this off.
   */
  readonly largeRequests?: boolean;
}

export async function startEtcd(o: StartEtcdOptions): Promise<EtcdProcess> {
  const dir = await makeTempDir('etcd', o.cleanup);
  const [clientPort, peerPort] = await freePorts(2);
  const scheme = o.tls ? 'https' : 'http';
  const clientUrl = `${scheme}://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const dataDir = join(dir, 'data');
  const tls = o.tls ? await makeCertificates(dir) : undefined;
  const args = [
    '--name=dmtest',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=dmtest=${peerUrl}`,
    '--initial-cluster-state=new',
    ...(o.largeRequests ? ['--max-request-bytes=8388608'] : []),
    '--logger=zap',
    '--log-outputs=stderr',
    ...(tls
      ? [`--cert-file=${tls.serverCert}`, `--key-file=${tls.serverKey}`, '--client-cert-auth', `--trusted-ca-file=${tls.caFile}`]
      : []),
  ];
  let proc: TrackedProcess | undefined;
  const start = async () => {
    const p = spawnTracked('etcd', args, { cleanup: o.cleanup, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    proc = p;
    await waitFor(
      async () => {
        const exited = await Promise.race([p.exited.then(() => true), Promise.resolve(false)]);
        if (exited) throw new Error(`etcd exited during start:\n${p.output().slice(-3000)}`);
        return health(clientUrl, tls);
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `etcd at ${clientUrl} to be healthy` },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n${p.output().slice(-3000)}`, { cause: e });
    });
  };
  await start();
  return {
    endpoints: [clientUrl],
    dataDir,
    ...(tls
      ? {
          caFile: tls.caFile,
          certFile: tls.clientCert,
          keyFile: tls.clientKey,
          caPem: await readFile(tls.caFile),
          certPem: await readFile(tls.clientCert),
          keyPem: await readFile(tls.clientKey),
        }
      : {}),
    get pid() {
      return proc!.pid;
    },
    stop: async () => {
      await proc?.stop();
    },
    kill9: async () => {
      if (!proc) return;
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await proc.exited;
    },
    start,
    output: () => proc?.output() ?? '',
  };
}

interface Certificates {
  readonly caFile: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate (EC P-256, 2 days). */
async function makeCertificates(dir: string): Promise<Certificates> {
  const ca = await makeTestCa(dir, 'dmtest-etcd-ca');
  const server = await ca.sign(
    'server',
    '/CN=127.0.0.1',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  const client = await ca.sign('client', '/CN=dotmesh-server', 'extendedKeyUsage=clientAuth\n');
  return { caFile: ca.caCert, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key };
}

/** GET /health: true once etcd reports itself healthy. */
async function health(url: string, tls: Certificates | undefined): Promise<boolean> {
  const options = tls
    ? { ca: await readFile(tls.caFile), cert: await readFile(tls.clientCert), key: await readFile(tls.clientKey) }
    : {};
  return new Promise((resolve) => {
    const req = (tls ? httpsRequest : httpRequest)(`${url}/health`, { ...options, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The stores a server can run on; server suites run once per kind. */
export type StoreKind = 'embedded' | 'etcd';
export const STORE_KINDS: readonly StoreKind[] = ['embedded', 'etcd'];

/**
 * startServerProcess options for a store kind: nothing for the embedded store; for etcd a
 * fresh TLS etcd (client-certificate auth), so TLS is exercised end to end.
 */
export async function storeOptionsFor(kind: StoreKind, cleanup: Cleanup): Promise<{ etcd?: EtcdProcess }> {
  if (kind === 'embedded') return {};
  return { etcd: await startEtcd({ cleanup, tls: true }) };
}
